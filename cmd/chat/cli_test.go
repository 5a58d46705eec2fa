// Tests of the command line's grammar and verdicts: global flags after the
// command and "--", the status command's exit codes, history --last and
// --version.
package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun_FlagsAfterTheCommand(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	h.cl.AddUser("bob", "pw")
	body := func(out string) string {
		t.Helper()
		var m messageJSON
		require.NoError(t, json.Unmarshal([]byte(out), &m), "JSON: %q", out)
		return m.Body
	}
	assert.Equal(t, "hi", body(h.ok("--user", "alice", "send", "bob", "hi", "--json")), "--json after the text is the flag")
	assert.Equal(t, "hi there", body(h.ok("send", "--user", "alice", "bob", "--json", "hi", "there")), "flags among the arguments")
	assert.Equal(t, "hi --json", body(h.ok("--json", "--user", "alice", "send", "bob", "--", "hi", "--json")), "after --, text")
	assert.Equal(t, "-5 degrees", body(h.ok("--json", "--user", "alice", "send", "--", "bob", "-5", "degrees")))
	out := h.ok("history", "--user", "bob", "--json", "--limit", "1")
	assert.Equal(t, "hi", body(out))
	assert.Contains(t, h.ok("read", "--user", "bob", "--limit", "1"), "alice -> bob: hi", "human without --json")

	r := h.run("--user", "alice", "send", "bob", "hi", "--bogus")
	assert.Equal(t, 2, r.code, "an unknown flag after the command is a usage error, not text")
	assert.Contains(t, r.stderr, "flag provided but not defined: -bogus")
}

func TestRun_StatusExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(h *harness)
		code   int
		stderr string
	}{
		{"healthy", func(*harness) {}, 0, ""},
		{"a replica down", func(h *harness) { h.cl.Stop(2) }, 3, "chat: degraded: replica 2 is down\n"},
		{"a replica out of sync", func(h *harness) { h.cl.SetInSync(0, false) }, 3, "chat: degraded: replica 0 is out of sync\n"},
		{"down and out of sync", func(h *harness) { h.cl.Stop(0); h.cl.SetInSync(2, false) }, 3,
			"chat: degraded: replica 0 is down, replica 2 is out of sync\n"},
		{"no primary", func(h *harness) {
			h.cl.SetWaiting("restarted; waiting to hear from replica 2")
			h.cl.SetPrimary(-1)
		}, 1, "chat: no primary serves\n"},
		{"every replica down", func(h *harness) {
			for i := range 3 {
				h.cl.Stop(i)
			}
		}, 1, "chat: no primary serves\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.t = t
			tt.setup(h)
			r := h.run("status")
			assert.Equal(t, tt.code, r.code, "stdout %s", r.stdout)
			assert.Equal(t, tt.stderr, r.stderr)
			assert.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 3, "the replicas are printed in every case")

			r = h.run("--json", "status")
			assert.Equal(t, tt.code, r.code)
			assert.Empty(t, r.stderr)
			assert.Equal(t, 3, strings.Count(r.stdout, "\n"))
			assert.NotContains(t, r.stdout, `"error"`)
		})
	}
	h := newHarness(t)
	h.cl.SetWaiting("restarted; waiting to hear from replica 2")
	h.cl.SetPrimary(-1)
	r := h.run("status")
	assert.Contains(t, r.stdout, "waiting: restarted; waiting to hear from replica 2", "the replicas' reasons")
}

func TestRun_HistoryLast(t *testing.T) {
	h := newHarness(t)
	h.cl.AddUser("alice", "pw")
	h.cl.AddUser("bob", "pw")
	for _, b := range []string{"one", "two", "three", "four"} {
		h.cl.Post("alice", "bob", b)
	}
	h.cl.Post("bob", "bob", "note")
	bodies := func(out string) []string {
		var got []string
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			var m messageJSON
			require.NoError(t, json.Unmarshal([]byte(line), &m))
			got = append(got, m.Body)
		}
		return got
	}
	assert.Equal(t, []string{"four", "note"}, bodies(h.ok("--json", "--user", "bob", "history", "--last", "2")), "the newest, oldest first")
	assert.Equal(t, []string{"three", "four"}, bodies(h.ok("--json", "--user", "bob", "history", "--with", "alice", "--last", "2")))
	assert.Equal(t, []string{"one", "two", "three", "four", "note"}, bodies(h.ok("--json", "--user", "bob", "history", "--last", "50")))
	assert.Equal(t, []string{"one", "two"}, bodies(h.ok("--json", "--user", "bob", "history", "--limit", "2")), "--limit: the oldest")
}

func TestRun_Version(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{{"--version"}, {"status", "--version"}} {
		r := h.run(args...)
		require.NoError(t, r.err)
		assert.Regexp(t, `^chat \S+ \S+ rev \S+.* go1\.\d+`, r.stdout)
		assert.Equal(t, 1, strings.Count(r.stdout, "\n"), "one line")
	}
}

// fakePrompter answers password prompts from a list, and records them.
type fakePrompter struct {
	answers []string
	asked   []string
}

func (f *fakePrompter) readPassword(prompt string) (string, error) {
	f.asked = append(f.asked, prompt)
	a := f.answers[0]
	f.answers = f.answers[1:]
	return a, nil
}

func TestRun_RegisterAsksForThePasswordTwice(t *testing.T) {
	h := newHarness(t)
	delete(h.env, "CHAT_PASSWORD")
	run := func(p *fakePrompter, args ...string) result {
		var stdout, stderr syncBuffer
		a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: h.getenv, prompt: p}
		err := a.main(t.Context(), args)
		return result{stdout: stdout.String(), stderr: stderr.String(), err: err, code: exitCode(err)}
	}
	p := &fakePrompter{answers: []string{"one", "two"}}
	r := run(p, "--user", "erin", "register")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "chat: the two passwords differ; nothing registered\n", r.stderr)
	assert.Equal(t, []string{"Password: ", "Password again: "}, p.asked)

	p = &fakePrompter{answers: []string{"same", "same"}}
	r = run(p, "--user", "erin", "register")
	require.NoError(t, r.err)
	assert.Equal(t, "registered erin\n", r.stdout)

	p = &fakePrompter{answers: []string{"same"}}
	r = run(p, "--user", "erin", "read")
	require.NoError(t, r.err, "logging in asks once: %s", r.stderr)
	assert.Equal(t, []string{"Password: "}, p.asked)
}
