package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// chatdArgs make password hashing cheap: the tests register and log in a
// lot, and argon2id at production cost would dominate their run time.
var chatdArgs = []string{"--argon-memory", "64", "--argon-time", "1",
	// A failure detector tolerant of the CPU starvation of a loaded CI
	// machine (dozens of processes under -race on two cores): a stalled
	// replica is not mistaken for a crashed one. Failover is exercised all
	// the same, only slower than chatd's defaults.
	"--heartbeat", "100ms", "--failover-timeout", "1s"}

// Time limits. Generous: the machine is shared, and a limit only decides
// how long a broken build takes to fail.
const (
	commandTimeout = 30 * time.Second // one CLI process
	waitTimeout    = 15 * time.Second // polling for a condition
	pollInterval   = 20 * time.Millisecond
)

// startCluster starts replicas chatd processes in a temporary directory,
// returning once each answers. They are killed when the test ends, and
// their logs printed if it failed.
func startCluster(t *testing.T, replicas int) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Start(t.Context(), cluster.Config{Chatd: bins.Chatd, Dir: t.TempDir(), Replicas: replicas, Args: chatdArgs})
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for id := range replicas {
				t.Logf("replica %d log (%s):\n%s", id, c.LogPath(id), tailFile(c.LogPath(id), 8<<10))
			}
		}
	})
	return c
}

// waitPrimary waits until exactly one running replica says, in its hello,
// that it is the primary, and returns its id. For the multi-replica
// scenarios: after a kill, the next primary is found this way.
func waitPrimary(t *testing.T, c *cluster.Cluster) int {
	t.Helper()
	primary := -1
	waitUntil(t, "one replica is primary", func() bool {
		primary = -1
		for id, addr := range c.Addrs() {
			if !c.Running(id) {
				continue
			}
			ok, err := cluster.Hello(t.Context(), addr)
			if err != nil || ok.Role != wire.RolePrimary {
				continue
			}
			if primary >= 0 {
				return false // two claim it: wait for the older to step down
			}
			primary = id
		}
		return primary >= 0
	})
	return primary
}

// tailFile returns the last n bytes of a file, for failure messages.
func tailFile(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// waitUntil polls cond, on the test's goroutine (so cond may use require),
// until it holds; it fails the test after waitTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitLong(t, what, waitTimeout, cond)
}

// waitLong is waitUntil with its own limit, for conditions that take a
// whole phase of a test.
func waitLong(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting until "+what)
		}
		select {
		case <-t.Context().Done():
			require.FailNow(t, "test canceled waiting until "+what)
		case <-time.After(pollInterval):
		}
	}
}

// cliResult is what one run of a binary printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// lines returns stdout's lines; each must be a JSON object.
func (r cliResult) lines(t *testing.T) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for line := range strings.Lines(r.stdout) {
		line = strings.TrimSuffix(line, "\n")
		require.True(t, json.Valid([]byte(line)) && strings.HasPrefix(line, "{"), "not a JSON object: %q", line)
		out = append(out, json.RawMessage(line))
	}
	return out
}

// runBinary runs a binary to completion with extra environment variables.
func runBinary(t *testing.T, env []string, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		require.NoError(t, err, "run %s %q; stderr: %s", bin, args, res.stderr)
	}
	return res
}

// chatCLI runs `chat --json` as user against c, with the password in
// $CHAT_PASSWORD.
func chatCLI(t *testing.T, c *cluster.Cluster, user, password string, args ...string) cliResult {
	t.Helper()
	return runBinary(t, []string{"CHAT_PASSWORD=" + password},
		bins.Chat, append([]string{"--servers", c.Servers(), "--user", user, "--json"}, args...)...)
}

// mustChat runs chatCLI, requires success and decodes each output line
// into a T.
func mustChat[T any](t *testing.T, c *cluster.Cluster, user, password string, args ...string) []T {
	t.Helper()
	res := chatCLI(t, c, user, password, args...)
	require.Zero(t, res.code, "chat %q as %s: stdout %s stderr %s", args, user, res.stdout, res.stderr)
	return decodeLines[T](t, res.lines(t))
}

func decodeLines[T any](t *testing.T, lines []json.RawMessage) []T {
	t.Helper()
	out := make([]T, 0, len(lines))
	for _, l := range lines {
		var v T
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&v), "line %s", l)
		out = append(out, v)
	}
	return out
}

// chatError runs chatCLI expecting a failure, and returns the code of the
// one error object it printed.
func chatError(t *testing.T, c *cluster.Cluster, user, password string, args ...string) string {
	t.Helper()
	res := chatCLI(t, c, user, password, args...)
	require.NotZero(t, res.code, "chat %q as %s should fail; stdout %s", args, user, res.stdout)
	errs := decodeLines[errorJSON](t, res.lines(t))
	require.Len(t, errs, 1, "one error object: %s", res.stdout)
	assert.NotEmpty(t, errs[0].Error.Message)
	return errs[0].Error.Code
}

// The JSON objects of CONTRACT.md's chat section.
type (
	userJSON struct {
		User string `json:"user"`
	}
	userOnlineJSON struct {
		User   string `json:"user"`
		Online bool   `json:"online"`
	}
	messageJSON struct {
		ID     uint64 `json:"id"`
		From   string `json:"from"`
		To     string `json:"to"`
		Body   string `json:"body"`
		SentAt string `json:"sent_at"`
	}
	deletedJSON struct {
		Deleted []uint64 `json:"deleted"`
	}
	accountDeletedJSON struct {
		User    string `json:"user"`
		Deleted bool   `json:"deleted"`
	}
	statusJSON struct {
		ID      uint32 `json:"id"`
		Addr    string `json:"addr"`
		Role    string `json:"role"`
		Epoch   uint64 `json:"epoch"`
		LogEnd  uint64 `json:"log_end"`
		Commit  uint64 `json:"commit"`
		InSync  bool   `json:"in_sync"`
		Waiting string `json:"waiting"`
		// DiskFull: the replica's disk is below its reserve (omitted
		// otherwise).
		DiskFull string `json:"disk_full"`
	}
	errorJSON struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
)

// syncBuffer is a bytes.Buffer safe for concurrent use: os/exec copies a
// background process's stderr into it while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bgProcess is a binary running in the background whose stdout lines are
// read as they arrive. Its reader goroutine ends when stdout closes; the
// process is killed at the end of the test if still running.
type bgProcess struct {
	cmd    *exec.Cmd
	lines  chan string // closed at the end of stdout
	stderr syncBuffer
	done   chan struct{} // closed once the process has exited
	err    error         // Wait's result, set before done closes
}

func startBackground(t *testing.T, env []string, bin string, args ...string) *bgProcess {
	t.Helper()
	p := &bgProcess{cmd: exec.Command(bin, args...), lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		// Wait only after stdout is drained, as StdoutPipe requires.
		p.err = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// next returns the next stdout line, failing the test if none comes in
// time.
func (p *bgProcess) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		require.True(t, ok, "process exited early: %v; stderr: %s", p.err, p.stderr.String())
		return l
	case <-time.After(waitTimeout):
		require.FailNow(t, "no output line in time", "stderr: %s", p.stderr.String())
		return ""
	}
}

// signal sends sig and waits for the process to exit, returning its exit
// code.
func (p *bgProcess) signal(t *testing.T, sig os.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		require.FailNow(t, "process did not exit after "+sig.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// newClient returns a client-library client logged in as user (registered
// first if register is set), closed at the end of the test.
func newClient(t *testing.T, c *cluster.Cluster, user, password string, register bool) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Servers: c.Addrs(), FailoverTimeout: 20 * time.Second, RequestTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	if register {
		require.NoError(t, cl.Register(t.Context(), user, password))
	}
	_, err = cl.Login(t.Context(), user, password)
	require.NoError(t, err)
	return cl
}

// allHistory returns every message of the client's user, oldest first.
func allHistory(t *testing.T, cl *client.Client) []wire.Message {
	t.Helper()
	var (
		all   []wire.Message
		after uint64
	)
	for {
		page, next, err := cl.History(t.Context(), "", after, 0)
		require.NoError(t, err)
		all = append(all, page...)
		if next == 0 {
			return all
		}
		after = next
	}
}

// sender sends numbered messages to one recipient, one at a time (each
// acknowledged before the next is sent, so their order is defined), and
// records what it attempted and what was acknowledged.
type sender struct {
	name, to string
	cl       *client.Client

	mu sync.Mutex
	// attempted are the bodies sent, in order; acked the messages the
	// server acknowledged, in order. Invariant: acked is a subsequence of
	// attempted (by body), and only the last attempt may lack an ack.
	attempted []string
	acked     []wire.Message
	errs      []error
}

// body is the text of message i of the sender.
func (s *sender) body(i int) string { return fmt.Sprintf("%s#%06d", s.name, i) }

// runSenders starts every sender on its own goroutine and returns the
// function that stops them and waits for them (idempotent; also run at the
// test's cleanup).
func runSenders(t *testing.T, senders ...*sender) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { s.run(t.Context(), done) })
	}
	stop = sync.OnceFunc(func() { close(done); wg.Wait() })
	t.Cleanup(stop)
	return stop
}

// run sends until stop is closed, then returns after its current send.
func (s *sender) run(ctx context.Context, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		body := s.body(i)
		s.mu.Lock()
		s.attempted = append(s.attempted, body)
		s.mu.Unlock()
		m, err := s.cl.Send(ctx, s.to, body)
		s.mu.Lock()
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("send %s: %w", body, err))
		} else {
			s.acked = append(s.acked, m)
		}
		s.mu.Unlock()
		if err != nil {
			return // the outcome of this send is unknown; stop here
		}
	}
}

// ackedCount is the number of acknowledged sends so far.
func (s *sender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// waitAcked waits until every sender has at least n acknowledged sends.
func waitAcked(t *testing.T, senders []*sender, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("every sender has %d acknowledged sends", n), func() bool {
		return !slices.ContainsFunc(senders, func(s *sender) bool { return s.ackedCount() < n })
	})
}

// checkSends checks the recipient's history against what the senders
// did (DESIGN.md invariants 1, 2, 3 and 8): every acknowledged send is
// there exactly once with its id and body; every message there was sent
// (at most the last, unacknowledged, attempt of a sender beyond the
// acknowledged ones); message ids are unique; per sender, the order is the
// send order. It returns the ids of the senders' messages in the history.
func checkSends(t testingT, senders []*sender, history []wire.Message) map[uint64]bool {
	t.Helper()
	ids := make(map[uint64]bool)
	byBody := make(map[string]wire.Message)
	for _, m := range history {
		assert.False(t, ids[m.ID], "message id %d twice in the history", m.ID)
		ids[m.ID] = true
		_, dup := byBody[m.Body]
		assert.False(t, dup, "body %q twice in the history", m.Body)
		byBody[m.Body] = m
	}
	senderIDs := make(map[uint64]bool)
	for _, s := range senders {
		s.mu.Lock()
		assert.Empty(t, s.errs, "sender %s", s.name)
		attempted := make(map[string]int, len(s.attempted))
		for i, b := range s.attempted {
			attempted[b] = i
		}
		for _, a := range s.acked {
			got, ok := byBody[a.Body]
			if assert.True(t, ok, "acknowledged send %s (id %d) lost", a.Body, a.ID) {
				assert.Equal(t, a.ID, got.ID, "message %s: id", a.Body)
				assert.Equal(t, s.name, got.From)
				assert.Equal(t, s.to, got.To)
			}
		}
		last := -1
		for _, m := range history {
			if m.From != s.name {
				continue
			}
			i, ok := attempted[m.Body]
			assert.True(t, ok, "phantom message %q (id %d) from %s", m.Body, m.ID, s.name)
			assert.Greater(t, i, last, "message %q out of %s's send order", m.Body, s.name)
			last = i
			senderIDs[m.ID] = true
		}
		// Only the last attempt may be in the history without an ack.
		assert.LessOrEqual(t, last, len(s.acked), "sender %s: messages beyond the acknowledged ones", s.name)
		s.mu.Unlock()
	}
	return senderIDs
}

// testingT is the part of *testing.T the checks use, so that their own
// test can hand them a recorder.
type testingT interface {
	require.TestingT
	Helper()
}

// replayEvent is the part of a chatreplay --json line the tests check.
type replayEvent struct {
	Offset uint64 `json:"offset"`
	Epoch  uint64 `json:"epoch"`
	Type   string `json:"type"`
	Time   string `json:"time"`
	Client string `json:"client"`
	Seq    uint64 `json:"seq"`
	ID     uint64 `json:"id"`
	From   string `json:"from"`
	To     string `json:"to"`
	Body   string `json:"body"`
	Result string `json:"result"`
	// Resubmitted locates the truncated copy of a re-submitted record
	// (after a fork); nil for every other record.
	Resubmitted *struct {
		Epoch  uint64 `json:"epoch"`
		Offset uint64 `json:"offset"`
	} `json:"resubmitted"`
}

// replay runs chatreplay on a stopped replica's data directory and
// requires success.
func replay(t *testing.T, dataDir string, args ...string) cliResult {
	t.Helper()
	res := runBinary(t, nil, bins.Chatreplay, append([]string{"--data", dataDir}, args...)...)
	require.Zero(t, res.code, "chatreplay %q: %s", args, res.stderr)
	return res
}

// replayEvents returns the events of a stopped replica's log, checking
// that the offsets are dense from 1.
func replayEvents(t *testing.T, dataDir string) []replayEvent {
	t.Helper()
	res := replay(t, dataDir, "--json")
	var evs []replayEvent
	for _, l := range res.lines(t) {
		var ev replayEvent
		require.NoError(t, json.Unmarshal(l, &ev))
		require.Equal(t, uint64(len(evs)+1), ev.Offset, "offsets are dense from 1")
		evs = append(evs, ev)
	}
	return evs
}

// checkReplayedSends checks the applied sends of a replica's log: each
// (client, seq) and each message id applied at most once, and the senders'
// applied messages exactly the ids wantIDs (those in the history).
func checkReplayedSends(t testingT, evs []replayEvent, senders []*sender, wantIDs map[uint64]bool) {
	t.Helper()
	names := make(map[string]bool)
	for _, s := range senders {
		names[s.name] = true
	}
	type request struct {
		client string
		seq    uint64
	}
	requests := make(map[request]bool)
	ids := make(map[uint64]bool)
	got := make(map[uint64]bool)
	for _, ev := range evs {
		if ev.Type != "chat.send" || ev.Result != "ok" {
			continue
		}
		r := request{ev.Client, ev.Seq}
		assert.False(t, requests[r], "request %v applied twice (offset %d)", r, ev.Offset)
		requests[r] = true
		assert.False(t, ids[ev.ID], "message id %d applied twice (offset %d)", ev.ID, ev.Offset)
		ids[ev.ID] = true
		if names[ev.From] {
			got[ev.ID] = true
		}
	}
	assert.Equal(t, wantIDs, got, "applied sends in the log vs messages in the history")
}

// stateSummary is the last line of chatreplay --state --json.
type stateSummary struct {
	Applied  uint64 `json:"applied"`
	Accounts uint64 `json:"accounts"`
	Digest   string `json:"digest"`
}

func replayState(t *testing.T, dataDir string, args ...string) stateSummary {
	t.Helper()
	lines := replay(t, dataDir, append([]string{"--state", "--json"}, args...)...).lines(t)
	require.NotEmpty(t, lines)
	var s stateSummary
	require.NoError(t, json.Unmarshal(lines[len(lines)-1], &s))
	require.Len(t, s.Digest, 64)
	return s
}

// checkReplicasAgree replays every replica's data directory (all must be
// stopped) and checks that they print the same events and the same state
// digest (DESIGN.md invariant 9 once they have converged), and that
// replaying with the scratch state in memory gives the same state as on
// disk.
func checkReplicasAgree(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	var events string
	var state stateSummary
	for id := range c.Addrs() {
		require.False(t, c.Running(id), "replica %d must be stopped to be replayed", id)
		ev := replay(t, c.DataDir(id), "--json").stdout
		st := replayState(t, c.DataDir(id))
		assert.Equal(t, st, replayState(t, c.DataDir(id), "--mem"), "replica %d: state on disk vs in memory", id)
		if id == 0 {
			events, state = ev, st
			continue
		}
		assert.Equal(t, events, ev, "replica %d's events differ from replica 0's", id)
		assert.Equal(t, state, st, "replica %d's state differs from replica 0's", id)
	}
}

// noCrashOutput checks that a process's output shows no Go crash.
func noCrashOutput(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"goroutine ", "panic:", "runtime error"} {
		assert.NotContains(t, out, bad)
	}
}
