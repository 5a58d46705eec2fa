package chatdb_test

// Goal: a state database whose process is SIGKILLed in the middle of
// applying reopens consistent: it lost nothing it had committed (a process
// crash keeps Badger's write-ahead log in the page cache), and its state
// equals a fresh replay of the same records up to its Applied(). Power loss
// is not simulated; the package doc says what it may lose.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

const (
	// killEnv names the directory the re-executed test binary applies to.
	killEnv = "CHATDB_TEST_KILL_DIR"
	// killSends is how many sends the child's log holds; far more than it
	// applies before it is killed.
	killSends = 30_000
	// killBatch is the records per State.Apply, as the shell's batches.
	killBatch = 16
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(killEnv); dir != "" {
		os.Exit(killChild(dir))
	}
	os.Exit(m.Run())
}

// killChild applies the records in batches, printing Applied() after each
// committed batch, until it is killed.
func killChild(dir string) int {
	recs, err := sendRecords(killSends)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db, err := chatdb.Open(dir, chatdb.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st := chat.NewState(db.Store())
	for from := 0; from < len(recs); from += killBatch {
		if err := st.Apply(recs[from:min(from+killBatch, len(recs))]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(st.Applied())
	}
	fmt.Fprintln(os.Stderr, "applied every record before being killed")
	return 1
}

func TestDB_SurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// Kill the child in the middle of its applies, once it has committed
	// enough of them to have written a few thousand keys.
	var committed eventlog.Offset
	sc := bufio.NewScanner(out)
	for committed < 3000 && sc.Scan() {
		n, err := strconv.ParseUint(sc.Text(), 10, 64)
		require.NoError(t, err)
		committed = eventlog.Offset(n)
	}
	require.GreaterOrEqual(t, committed, eventlog.Offset(3000), "child stopped early: %v", sc.Err())
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "child exit: %v", err)

	db, err := chatdb.Open(dir, chatdb.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	st := chat.NewState(db.Store())
	applied := st.Applied()
	assert.GreaterOrEqual(t, applied, committed, "a process crash loses no committed apply")
	require.Less(t, int(applied), killSends, "the child was killed before the end")
	require.NoError(t, st.Check())

	recs, err := sendRecords(killSends)
	require.NoError(t, err)
	fresh := chat.NewState(chat.NewMemStore())
	require.NoError(t, fresh.Apply(recs[:applied]))
	want, err := fresh.Digest()
	require.NoError(t, err)
	got, err := st.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, got, "the state is a replay of exactly the records up to Applied()")

	// And it resumes: applying the rest gives the full replay's state.
	require.NoError(t, st.Apply(recs[applied:applied+500]))
	require.NoError(t, fresh.Apply(recs[applied:applied+500]))
	want, err = fresh.Digest()
	require.NoError(t, err)
	got, err = st.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, got, "applying after the crash continues from Applied()")
}
