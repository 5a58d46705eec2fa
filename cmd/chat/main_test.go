// Tests of the chat CLI: run against the fake cluster of clienttest, with
// buffers for its streams. They pin CONTRACT.md's JSON objects, the error
// object and exit codes (status's 0, 1 and 3 included), flags after the
// command, the password sources, usage errors and error messages, listen
// and the interactive session (plain lines, and the line editor driven
// through an in-memory terminal), both riding out outages.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/client/clienttest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of listen.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is one run of the program.
type result struct {
	stdout, stderr string
	err            error
	code           int
}

// harness runs the program against a fake cluster.
type harness struct {
	t   *testing.T
	cl  *clienttest.Cluster
	env map[string]string
}

func newHarness(t *testing.T) *harness {
	cl := clienttest.Start(t, 3)
	cl.SetPrimary(1)
	return &harness{t: t, cl: cl, env: map[string]string{
		"CHAT_SERVERS":  strings.Join(cl.Addrs(), ","),
		"CHAT_PASSWORD": "pw",
	}}
}

func (h *harness) getenv(k string) string { return h.env[k] }

// runIn runs the program with stdin and extra environment.
func (h *harness) runIn(ctx context.Context, stdin io.Reader, args ...string) result {
	var stdout, stderr syncBuffer
	a := &app{stdin: stdin, stdout: &stdout, stderr: &stderr, getenv: h.getenv}
	err := a.main(ctx, args)
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err, code: exitCode(err)}
}

func (h *harness) run(args ...string) result {
	return h.runIn(h.t.Context(), strings.NewReader(""), args...)
}

// ok runs args and requires success.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	require.NoError(h.t, r.err, "chat %q: stderr %s stdout %s", args, r.stderr, r.stdout)
	require.Zero(h.t, r.code)
	return r.stdout
}

func TestRun_JSONObjects(t *testing.T) {
	h := newHarness(t)
	assert.Equal(t, `{"user":"alice"}`+"\n", h.ok("--user", "alice", "--json", "register"))
	assert.Equal(t, `{"user":"bob"}`+"\n", h.ok("register", "--user", "bob", "--json"), "global flags after the command")

	assert.Equal(t, `{"user":"alice","online":false}`+"\n"+`{"user":"bob","online":false}`+"\n",
		h.ok("--json", "users"), "anonymous listing")
	assert.Equal(t, `{"user":"bob","online":false}`+"\n", h.ok("--json", "--user", "alice", "users", "b?b"))

	sent1 := `{"id":1,"from":"alice","to":"bob","body":"hello <world> & you","sent_at":"2026-01-02T03:04:06.123456789Z"}` + "\n"
	assert.Equal(t, sent1, h.ok("--json", "--user", "alice", "send", "bob", "hello", "<world>", "&", "you"))
	sent2 := `{"id":2,"from":"alice","to":"bob","body":"second","sent_at":"2026-01-02T03:04:07.123456789Z"}` + "\n"
	assert.Equal(t, sent2, h.ok("--json", "--user", "alice", "send", "bob", "second"))
	sent3 := `{"id":3,"from":"bob","to":"alice","body":"back","sent_at":"2026-01-02T03:04:08.123456789Z"}` + "\n"
	assert.Equal(t, sent3, h.ok("--json", "--user", "bob", "send", "alice", "back"))

	assert.Equal(t, sent1+sent2+sent3, h.ok("--json", "--user", "bob", "history"))
	assert.Equal(t, sent1, h.ok("--json", "--user", "bob", "history", "--with", "alice", "--limit", "1"))
	assert.Equal(t, sent1, h.ok("--json", "--user", "bob", "read", "--limit", "1"))
	assert.Equal(t, sent2, h.ok("--json", "--user", "bob", "read"))
	assert.Empty(t, h.ok("--json", "--user", "bob", "read"), "nothing left to deliver")

	assert.Equal(t, `{"deleted":[1,3]}`+"\n", h.ok("--json", "--user", "bob", "delete-messages", "1", "3"))
	assert.Equal(t, sent2, h.ok("--json", "--user", "bob", "history"))
	assert.Equal(t, `{"user":"alice","deleted":true}`+"\n", h.ok("--json", "--user", "alice", "delete-account"))

	h.cl.Stop(2)
	r := h.run("--json", "status")
	assert.Equal(t, 3, r.code, "a replica is down")
	assert.Empty(t, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 3, "one object per replica, no error object")
	for i, line := range lines {
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &obj))
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		want := []string{"id", "addr", "role", "epoch", "log_end", "commit", "in_sync"}
		if i == 2 {
			want = append(want, "waiting")
		}
		assert.ElementsMatch(t, want, keys)
		assert.EqualValues(t, i, obj["id"])
		assert.Equal(t, h.cl.Addr(i), obj["addr"])
		assert.Equal(t, []string{"backup", "primary", "down"}[i], obj["role"])
	}
	var down map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &down))
	assert.Nil(t, down["log_end"], "no numbers for a replica nobody could ask")
	assert.Nil(t, down["epoch"])
	assert.Equal(t, false, down["in_sync"])
	assert.Equal(t, "connection refused", down["waiting"])
}

func TestRun_HumanOutput(t *testing.T) {
	h := newHarness(t)
	assert.Equal(t, "registered alice\n", h.ok("--user", "alice", "register"))
	out := h.ok("--user", "alice", "send", "alice", "note", "to", "self")
	assert.Contains(t, out, "#1 alice -> alice: note to self")
	assert.Contains(t, h.ok("--user", "alice", "read"), "#1 alice -> alice: note to self")
	assert.Equal(t, "alice (online)\n", h.ok("--user", "alice", "users"))
	assert.Equal(t, "deleted 1 message(s): 1\n", h.ok("--user", "alice", "delete-messages", "#1"))
	status := h.ok("status")
	assert.Contains(t, status, "primary")
	assert.Len(t, strings.Split(strings.TrimSpace(status), "\n"), 3)

	h.cl.Stop(0)
	r := h.run("status")
	assert.Equal(t, 3, r.code)
	assert.Regexp(t, `(?m)^0 +\S+ +down +\(connection refused\)$`, r.stdout, "a down replica shows no numbers")
	assert.Equal(t, "chat: degraded: replica 0 is down\n", r.stderr)
}

func TestRun_Errors(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		code    int
		errCode string
		message string
	}{
		{"unknown recipient", nil, []string{"--user", "alice", "send", "carol", "hi"}, 1, "unknown_user", `unknown user "carol"`},
		{"wrong password", map[string]string{"CHAT_PASSWORD": "bad"}, []string{"--user", "alice", "read"}, 1, "wrong_password", `wrong password for "alice"`},
		{"unknown account", nil, []string{"--user", "zed", "history"}, 1, "unknown_user", `no account "zed" (create it with: chat --user zed register)`},
		{"unknown peer", nil, []string{"--user", "alice", "history", "--with", "bob"}, 1, "unknown_user", `unknown user "bob"`},
		{"taken name", nil, []string{"--user", "alice", "register"}, 1, "user_exists", `user "alice" already exists`},
		{"no password", map[string]string{"CHAT_PASSWORD": ""}, []string{"--user", "alice", "read"}, 1, "no_password", "no password: set $CHAT_PASSWORD, pass --password-file, or run on a terminal"},
		{"not found", nil, []string{"--user", "alice", "delete-messages", "42"}, 1, "not_found", "no message #42 of yours"},
		{"no primary", map[string]string{"CHAT_SERVERS": "127.0.0.1:1"}, []string{"--timeout", "200ms", "--user", "alice", "read"}, 1, "unavailable",
			"no primary within 200ms: replica 0: down (connection refused)"},
		{"no user", nil, []string{"send", "bob", "hi"}, 2, "usage", "--user (or $CHAT_USER) is required"},
		{"send without text", nil, []string{"--user", "alice", "send", "bob"}, 2, "usage", "send: want TO TEXT..."},
		{"unknown flag", nil, []string{"--bogus", "status"}, 2, "usage", "flag provided but not defined: -bogus"},
		{"unknown command flag", nil, []string{"read", "--with", "x"}, 2, "usage", "read: flag provided but not defined: -with"},
		{"unknown command", nil, []string{"frobnicate"}, 2, "usage", `unknown command "frobnicate" (see chat help)`},
		{"bad id", nil, []string{"--user", "alice", "delete-messages", "x1"}, 2, "usage", `delete-messages: bad message id "x1"`},
		{"no ids", nil, []string{"--user", "alice", "delete-messages"}, 2, "usage", "delete-messages: want at least one message ID"},
		{"negative limit", nil, []string{"--user", "alice", "read", "--limit", "-1"}, 2, "usage", "read: --limit must not be negative"},
		{"limit and last", nil, []string{"--user", "alice", "history", "--limit", "1", "--last", "1"}, 2, "usage", "history: --limit and --last exclude each other"},
		{"extra argument", nil, []string{"status", "now"}, 2, "usage", `status: unexpected arguments ["now"]`},
		{"empty servers", map[string]string{"CHAT_SERVERS": " , "}, []string{"status"}, 2, "usage", "--servers lists no server"},
		{"malformed servers", map[string]string{"CHAT_SERVERS": "127.0.0.1:7100,localhost"}, []string{"--user", "alice", "read"}, 2, "usage",
			`--servers: "localhost" is not host:port (missing port in address)`},
		{"bad pattern", nil, []string{"users", "["}, 2, "usage", `users: bad pattern "[": syntax error in pattern (wildcards: * ? [a-z])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := *h
			th.t = t
			th.env = map[string]string{}
			for k, v := range h.env {
				th.env[k] = v
			}
			for k, v := range tt.env {
				th.env[k] = v
			}

			r := th.run(append([]string{"--json"}, tt.args...)...)
			require.Error(t, r.err)
			assert.Equal(t, tt.code, r.code)
			assert.Empty(t, r.stderr)
			var obj struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &obj), "stdout %q", r.stdout)
			assert.Equal(t, tt.errCode, obj.Error.Code)
			assert.Equal(t, tt.message, obj.Error.Message, "the reason, once, with the names")
			assert.Equal(t, 1, strings.Count(r.stdout, "\n"), "one line")

			// Without --json: nothing on stdout, the error on stderr.
			start := time.Now()
			r = th.run(tt.args...)
			assert.Equal(t, tt.code, r.code)
			assert.Empty(t, r.stdout)
			first, _, _ := strings.Cut(r.stderr, "\n")
			assert.Equal(t, "chat: "+tt.message, first)
			if tt.code == 2 {
				assert.Less(t, time.Since(start), time.Second, "a usage error fails at once")
			}
		})
	}
}

func TestRun_PasswordSources(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "from-file")
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(file, []byte("from-file\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))

	h.env["CHAT_PASSWORD"] = "from-env"
	h.env["CHAT_USER"] = "alice"
	assert.Empty(t, h.ok("--password-file", file, "read"), "the file wins over the environment")

	r := h.run("read")
	assert.Equal(t, 1, r.code, "the environment's password is wrong")
	assert.Equal(t, "chat: wrong password for \"alice\"\n", r.stderr)

	h.cl.AddUser("bob", "from-env")
	assert.Empty(t, h.ok("--user", "bob", "read"), "--user wins over $CHAT_USER; password from the environment")

	r = h.run("--password-file", filepath.Join(dir, "missing"), "read")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "read password file")

	r = h.run("--password-file", empty, "read")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "empty")

	delete(h.env, "CHAT_PASSWORD")
	r = h.run("read")
	assert.Equal(t, 1, r.code)
	assert.ErrorIs(t, r.err, errNoPassword, "no terminal, no password")
}

func TestRun_Help(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"help", "help"}} {
		r := h.run(args...)
		require.NoError(t, r.err, "%q", args)
		assert.Contains(t, r.stdout, "usage: chat [--servers", "%q", args)
		assert.Contains(t, r.stdout, "delete-messages", "%q", args)
	}
	for _, args := range [][]string{{"send", "-h"}, {"help", "send"}} {
		r := h.run(args...)
		require.NoError(t, r.err, "%q", args)
		assert.Contains(t, r.stdout, "usage: chat send TO TEXT...", "%q", args)
	}
	r := h.run("help", "nope")
	assert.Equal(t, 2, r.code)
}

func TestRun_Listen(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	h.cl.AddUser("bob", "pw")
	queued := h.cl.Post("alice", "bob", "queued")

	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: h.getenv}
		done <- a.main(ctx, []string{"--json", "--user", "bob", "listen"})
	}()
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), `"body":"queued"`) }, 5*time.Second, time.Millisecond)
	live := h.cl.Post("alice", "bob", "live")
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), `"body":"live"`) }, 5*time.Second, time.Millisecond)
	// A failover in the middle: the listener follows it.
	h.cl.SetPrimary(2)
	after := h.cl.Post("alice", "bob", "after failover")
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), `"body":"after failover"`) }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return len(h.cl.Queued("bob")) == 0 }, 5*time.Second, time.Millisecond, "acked once printed")

	cancel() // Ctrl-C
	require.NoError(t, <-done, "interrupt is a normal end: exit 0")
	assert.Empty(t, stderr.String())
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	require.Len(t, lines, 3, "each message once: %q", stdout.String())
	for i, m := range []uint64{queued.ID, live.ID, after.ID} {
		var obj messageJSON
		require.NoError(t, json.Unmarshal([]byte(lines[i]), &obj))
		assert.Equal(t, m, obj.ID)
	}
}

func TestRun_Interactive(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	h.cl.AddUser("bob", "pw")
	h.cl.Post("alice", "bob", "waiting for you")

	stdinR, stdinW := io.Pipe()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		a := &app{stdin: stdinR, stdout: &stdout, stderr: &stderr, getenv: h.getenv}
		done <- a.main(t.Context(), nil)
	}()
	write := func(s string) {
		_, err := io.WriteString(stdinW, s+"\n")
		require.NoError(t, err)
	}
	waitFor := func(w *syncBuffer, s string) {
		t.Helper()
		require.Eventually(t, func() bool { return strings.Contains(w.String(), s) }, 5*time.Second, time.Millisecond,
			"want %q in %q", s, w.String())
	}

	write("bob") // the user name prompt
	waitFor(&stdout, "Logged in as bob (1 unread)")
	waitFor(&stdout, "alice -> bob: waiting for you") // pushed: the session listens
	h.cl.Post("alice", "bob", "while you type")
	waitFor(&stdout, "alice -> bob: while you type")

	for _, step := range []struct{ line, want string }{
		{"help", "delete-messages"},
		{"help send", "usage: chat send TO TEXT..."},
		{"send alice hi   there", "#3 bob -> alice: hi there"},
		{"users a*", "alice\n"},
		{"history --with alice --limit 1", "#1 alice -> bob: waiting for you"},
		{"history --last 1", "#3 bob -> alice: hi there"},
		{"read", "bob> "},
		{"delete-messages 3", "deleted 1 message(s): 3"},
		{"status", "primary"},
	} {
		write(step.line)
		waitFor(&stdout, step.want)
	}
	write("frobnicate")
	waitFor(&stderr, `error: unknown command "frobnicate" (type help)`)
	write("delete 3")
	waitFor(&stderr, `error: unknown command "delete": it is delete-messages ID... now`)
	write("send alice")
	waitFor(&stderr, "error: send: want TO TEXT...")
	write("delete-messages x")
	waitFor(&stderr, `error: delete-messages: bad message id "x"`)
	write("send carol hi")
	waitFor(&stderr, `error: unknown user "carol"`)
	write("send --json alice hi")
	waitFor(&stderr, "error: send: flag provided but not defined: -json")
	write("register")
	waitFor(&stderr, "error: register: you are logged in as bob")
	write("quit")
	require.NoError(t, <-done)
	require.NoError(t, stdinW.Close())
	assert.Empty(t, h.cl.Queued("bob"), "pushed messages acked")
	assert.Equal(t, 2, strings.Count(stdout.String(), "waiting for you"),
		"the queued message is printed once by listen, once by history")
}

func TestRun_InteractiveEndOfInput(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("bob", "pw")
	r := h.runIn(t.Context(), strings.NewReader("send bob to myself\n"), "--user", "bob")
	require.NoError(t, r.err)
	assert.Contains(t, r.stdout, "bob -> bob: to myself")

	r = h.runIn(t.Context(), strings.NewReader(""))
	assert.Equal(t, 2, r.code, "no user name")

	delete(h.env, "CHAT_PASSWORD")
	r = h.runIn(t.Context(), strings.NewReader(""), "--user", "bob")
	assert.ErrorIs(t, r.err, errNoPassword)
}

func TestRun_RealEnvironment(t *testing.T) {
	cl := clienttest.Start(t, 1)
	cl.AddUser("carol", "secret")
	t.Setenv("CHAT_SERVERS", cl.Addr(0))
	t.Setenv("CHAT_USER", "carol")
	t.Setenv("CHAT_PASSWORD", "secret")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"--json", "users"}, strings.NewReader(""), &stdout, &stderr))
	assert.Equal(t, `{"user":"carol","online":true}`+"\n", stdout.String())
}
