package e2e

// chatd's command-line behaviour (CONTRACT.md): bad flags, a port in use,
// an unusable data directory each give a clear message on stderr and a
// non-zero exit, never a Go stack trace; SIGTERM is a clean shutdown
// (exit 0) that loses nothing.

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChatd_StartupErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { busy.Close() })
	running := startCluster(t, 1) // its data directory is locked

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("not a directory"), 0o644))
	// corrupt(sub) is a data directory whose database sub has a garbage
	// manifest; sub "" is the old layout (one database directly in it).
	corrupt := func(sub string) string {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, sub), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, sub, "MANIFEST"), []byte("garbage"), 0o644))
		return dir
	}
	// (A corrupt state is rebuilt from the log rather than refused: see
	// damage_test.go.)
	corruptLog, oldLayout := corrupt("log"), corrupt("")
	free := func() string { // an address nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr's first line
		// oneLine: stderr is exactly one line (usage errors also print
		// the flags).
		oneLine bool
	}{
		{"unknown flag", []string{"--bogus"}, 2, "flag provided but not defined: -bogus", false},
		{"no data", []string{"--listen", free()}, 2, "--data is required", false},
		{"bad peers", []string{"--data", t.TempDir(), "--peers", "0=nowhere"}, 2, "--peers", false},
		{"port in use", []string{"--data", t.TempDir(), "--listen", busy.Addr().String()}, 1, "address already in use", true},
		{"data is a file", []string{"--data", file, "--listen", free()}, 1, "not a directory", true},
		{"corrupt log", []string{"--data", corruptLog, "--listen", free()}, 1, filepath.Join(corruptLog, "log"), true},
		{"old layout", []string{"--data", oldLayout, "--listen", free()}, 1, oldLayout + " has the old layout", true},
		{"data in use", []string{"--data", running.DataDir(0), "--listen", free()}, 1, running.DataDir(0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runBinary(t, nil, bins.Chatd, append(tc.args, chatdArgs...)...)
			assert.Equal(t, tc.code, res.code, "stderr: %s", res.stderr)
			first, _, _ := strings.Cut(res.stderr, "\n")
			assert.Contains(t, first, tc.want)
			if tc.oneLine {
				assert.Equal(t, 1, strings.Count(res.stderr, "\n"), "one line: %q", res.stderr)
				assert.True(t, strings.HasPrefix(res.stderr, "chatd: "), res.stderr)
			}
			noCrashOutput(t, res.stdout+res.stderr)
		})
	}
	assert.True(t, running.Running(0), "the replica whose directory was in use is unharmed")
}

func TestChatd_SIGTERM(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	cl := newClient(t, c, "ann", "pw", true)
	m, err := cl.Send(t.Context(), "ann", "note to self")
	require.NoError(t, err)
	require.NoError(t, cl.Close())

	require.NoError(t, c.Stop(0), "SIGTERM: exit status 0")
	log := tailFile(c.LogPath(0), 1<<20)
	noCrashOutput(t, log)

	require.NoError(t, c.Restart(t.Context(), 0))
	history := allHistory(t, newClient(t, c, "ann", "pw", false))
	require.Len(t, history, 1)
	assert.Equal(t, m, history[0])
}
