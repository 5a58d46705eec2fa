// Tests of the long-lived clients: listen and the interactive session ride
// out outages (against the fake cluster, in seconds; outage_test.go does
// it with real replicas), and the session's line editor, driven through an
// in-memory terminal.
package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func waitFor(t *testing.T, w interface{ String() string }, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(w.String(), s) }, 10*time.Second, time.Millisecond,
		"want %q in %q", s, w.String())
}

func TestRun_ListenRidesOutAnOutage(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	h.cl.AddUser("bob", "pw")
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: h.getenv, outageAfter: 200 * time.Millisecond}
		done <- a.main(ctx, []string{"--timeout", "300ms", "--user", "bob", "listen"})
	}()
	h.cl.Post("alice", "bob", "before")
	waitFor(t, &stdout, "alice -> bob: before")

	h.cl.SetWaiting("restarted; waiting to hear from replica 2")
	h.cl.SetPrimary(-1)
	waitFor(t, &stderr, "chat: the cluster is unavailable, still trying: replicas 0, 1, 2: restarted; waiting to hear from replica 2\n")
	time.Sleep(time.Second) // more than the failover timeout
	h.cl.Post("alice", "bob", "queued meanwhile")
	h.cl.SetPrimary(2)
	waitFor(t, &stderr, "chat: the cluster is available again (primary "+h.cl.Addr(2))
	waitFor(t, &stdout, "alice -> bob: queued meanwhile")
	h.cl.Post("alice", "bob", "after")
	waitFor(t, &stdout, "alice -> bob: after")

	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 2, strings.Count(stderr.String(), "\n"), "one line for the outage, one for the recovery: %q", stderr.String())
}

func TestRun_ListenStartsDuringAnOutage(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("bob", "pw")
	h.cl.AddUser("alice", "pw")
	for i := range 3 {
		h.cl.Stop(i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: h.getenv, outageAfter: 200 * time.Millisecond}
		done <- a.main(ctx, []string{"--timeout", "300ms", "--user", "bob", "listen"})
	}()
	waitFor(t, &stderr, "chat: the cluster is unavailable, still trying: replicas 0, 1, 2: down (connection refused)\n")
	time.Sleep(time.Second)
	for i := range 3 {
		h.cl.Restart(t, i)
	}
	waitFor(t, &stderr, "chat: the cluster is available again")
	h.cl.Post("alice", "bob", "hello")
	waitFor(t, &stdout, "alice -> bob: hello")
	cancel()
	require.NoError(t, <-done)
}

// tty is an in-memory terminal: keys typed, screen written.
type tty struct {
	keys   *io.PipeReader
	screen *syncBuffer
}

func (t tty) Read(p []byte) (int, error)  { return t.keys.Read(p) }
func (t tty) Write(p []byte) (int, error) { return t.screen.Write(p) }

// startTerminalSession runs the interactive session on an in-memory
// terminal and returns the function that types keys, the screen and the
// session's end.
func startTerminalSession(t *testing.T, h *harness, args ...string) (typeKeys func(string), screen, stderr *syncBuffer, done chan error) {
	keysR, keysW := io.Pipe()
	t.Cleanup(func() { _ = keysW.Close() })
	screen, stderr = &syncBuffer{}, &syncBuffer{}
	var stdout syncBuffer
	done = make(chan error, 1)
	go func() {
		a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: stderr, getenv: h.getenv,
			terminal: tty{keys: keysR, screen: screen}, outageAfter: 200 * time.Millisecond}
		done <- a.main(t.Context(), args)
		_ = keysR.Close()
	}()
	typeKeys = func(s string) {
		_, err := io.WriteString(keysW, s)
		require.NoError(t, err)
	}
	return typeKeys, screen, stderr, done
}

func TestRun_SessionLineEditor(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	h.cl.AddUser("bob", "pw")
	typeKeys, screen, _, done := startTerminalSession(t, h, "--user", "bob")
	waitFor(t, screen, "Logged in as bob (0 unread)")
	waitFor(t, screen, "bob> ")

	// Line editing: a typo erased with backspace, the cursor moved left
	// to insert.
	typeKeys("send alice hellp\x7fo wrld\x1b[D\x1b[D\x1b[Do\r")
	waitFor(t, screen, "bob -> alice: hello world")

	// An incoming message while a line is half typed: printed above it,
	// and the half-typed line redrawn after it.
	typeKeys("send alice sec")
	waitFor(t, screen, "bob> send alice sec")
	h.cl.Post("alice", "bob", "interrupting")
	waitFor(t, screen, "alice -> bob: interrupting\r\nbob> send alice sec")
	typeKeys("ond\r")
	waitFor(t, screen, "bob -> alice: second")

	// History: Up recalls the last line, which runs again.
	typeKeys("\x1b[A\r")
	require.Eventually(t, func() bool { return strings.Count(screen.String(), "bob -> alice: second") == 2 },
		5*time.Second, time.Millisecond, "%q", screen.String())

	// The CLI's grammar, and errors through the editor too.
	typeKeys("history --with alice --last 1\r")
	require.Eventually(t, func() bool { return strings.Count(screen.String(), "bob -> alice: second") == 3 }, 5*time.Second, time.Millisecond)
	typeKeys("read 5\r")
	waitFor(t, screen, `error: read: unexpected arguments ["5"]`)
	typeKeys("help history\r")
	waitFor(t, screen, "usage: chat history [--with USER] [--limit N | --last N]\r\n")

	// Ctrl-C ends the session, on a new line.
	typeKeys("half typed")
	waitFor(t, screen, "bob> half typed")
	typeKeys("\x03")
	require.NoError(t, <-done)
	assert.True(t, strings.HasSuffix(screen.String(), "bob> half typed\r\n"), "a newline after Ctrl-C: %q", screen.String()[max(0, len(screen.String())-40):])
}

func TestRun_SessionOffersToRegister(t *testing.T) {
	h := newHarness(t)
	delete(h.env, "CHAT_PASSWORD")
	typeKeys, screen, _, done := startTerminalSession(t, h)
	waitFor(t, screen, "User: ")
	typeKeys("carol\r")
	waitFor(t, screen, "Password: ")
	typeKeys("s3cret\r")
	waitFor(t, screen, `There is no account "carol". Create it? [y/N] `)
	typeKeys("y\r")
	waitFor(t, screen, "Password again: ")
	typeKeys("s3cret\r")
	waitFor(t, screen, "registered carol")
	waitFor(t, screen, "Logged in as carol (0 unread)")
	assert.NotContains(t, screen.String(), "s3cret", "passwords are not echoed")
	typeKeys("\x04") // Ctrl-D on an empty line
	require.NoError(t, <-done)
	assert.True(t, strings.HasSuffix(screen.String(), "\r\n"))

	// The second password differs: nothing is created.
	typeKeys, screen, stderr, done := startTerminalSession(t, h, "--user", "dave")
	waitFor(t, screen, "Password: ")
	typeKeys("one\r")
	waitFor(t, screen, "Create it? [y/N] ")
	typeKeys("y\r")
	waitFor(t, screen, "Password again: ")
	typeKeys("two\r")
	err := <-done
	require.ErrorIs(t, err, errPasswordsDiffer)
	assert.Equal(t, "chat: the two passwords differ; nothing registered\n", stderr.String())
	r := h.run("users")
	assert.Equal(t, "carol\n", r.stdout)
}

func TestRun_SessionRidesOutAnOutage(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	h.cl.AddUser("bob", "pw")
	typeKeys, screen, _, done := startTerminalSession(t, h, "--timeout", "300ms", "--user", "bob")
	waitFor(t, screen, "bob> ")
	for i := range 3 {
		h.cl.Stop(i)
	}
	waitFor(t, screen, "chat: the cluster is unavailable, still trying: replicas 0, 1, 2: down (connection refused)")
	time.Sleep(time.Second)
	typeKeys("send alice hi\r")
	waitFor(t, screen, "error: no primary within 300ms: replicas 0, 1, 2: down (connection refused)")
	for i := range 3 {
		h.cl.Restart(t, i)
	}
	waitFor(t, screen, "chat: the cluster is available again")
	h.cl.Post("alice", "bob", "welcome back")
	waitFor(t, screen, "alice -> bob: welcome back")
	typeKeys("quit\r")
	require.NoError(t, <-done)
	assert.True(t, strings.HasSuffix(screen.String(), "bob> quit\r\n"), "no prompt left behind: %q", screen.String()[max(0, len(screen.String())-40):])
}

func TestRun_ListenEndsWhenTheAccountIsGone(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("bob", "pw")
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: h.getenv}
		done <- a.main(t.Context(), []string{"--user", "bob", "listen"})
	}()
	h.cl.Post("bob", "bob", "hello")
	waitFor(t, &stdout, "bob -> bob: hello")
	// Another session deletes the account; then the listener's connection
	// breaks and it cannot log in again.
	r := h.run("--user", "bob", "delete-account")
	require.NoError(t, r.err)
	for i := range 3 {
		h.cl.Cut(i)
	}
	err := <-done
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err))
	assert.Equal(t, "chat: the account \"bob\" no longer exists\n", stderr.String(), "said once, with the name")
}
