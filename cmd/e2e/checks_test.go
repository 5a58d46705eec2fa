package e2e

// The end-to-end checks must be able to fail: each kind of violation of
// DESIGN.md's invariants 1, 2, 3 and 8 is fed to checkSends and
// checkReplayedSends, which must report it.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replichat/replichat/chat/wire"
)

// recorder is a testingT that records failures instead of failing.
type recorder struct{ errs []string }

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) FailNow() { panic("FailNow") }
func (r *recorder) Helper()  {}

func TestCheckSends_Detects(t *testing.T) {
	t.Parallel()
	msg := func(id uint64, body string) wire.Message {
		return wire.Message{ID: id, From: "s", To: "r", Body: body}
	}
	newSender := func() *sender {
		s := &sender{name: "s", to: "r"}
		for i := range 3 {
			s.attempted = append(s.attempted, s.body(i))
		}
		s.acked = []wire.Message{msg(1, s.body(0)), msg(2, s.body(1))} // the third send's outcome is unknown
		return s
	}
	s := newSender()
	for _, tc := range []struct {
		name    string
		history []wire.Message
		ok      bool
	}{
		{"all there", []wire.Message{msg(1, s.body(0)), msg(2, s.body(1))}, true},
		{"unacknowledged one applied", []wire.Message{msg(1, s.body(0)), msg(2, s.body(1)), msg(3, s.body(2))}, true},
		{"acknowledged send lost", []wire.Message{msg(1, s.body(0))}, false},
		{"duplicate", []wire.Message{msg(1, s.body(0)), msg(2, s.body(1)), msg(4, s.body(1))}, false},
		{"duplicate id", []wire.Message{msg(1, s.body(0)), msg(2, s.body(1)), msg(2, "other")}, false},
		{"phantom", []wire.Message{msg(1, s.body(0)), msg(2, s.body(1)), msg(9, "never sent")}, false},
		{"out of order", []wire.Message{msg(2, s.body(1)), msg(1, s.body(0))}, false},
		{"wrong id", []wire.Message{msg(1, s.body(0)), msg(7, s.body(1))}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			checkSends(r, []*sender{newSender()}, tc.history)
			if tc.ok {
				assert.Empty(t, r.errs)
			} else {
				assert.NotEmpty(t, r.errs, "violation not reported")
			}
		})
	}
}

func TestCheckReplayedSends_Detects(t *testing.T) {
	t.Parallel()
	senders := []*sender{{name: "s", to: "r"}}
	send := func(off uint64, client string, seq, id uint64, result string) replayEvent {
		return replayEvent{Offset: off, Type: "chat.send", Client: client, Seq: seq, ID: id, From: "s", To: "r", Result: result}
	}
	want := map[uint64]bool{10: true, 11: true}
	for _, tc := range []struct {
		name string
		evs  []replayEvent
		ok   bool
	}{
		{"each once", []replayEvent{send(1, "c", 1, 10, "ok"), send(2, "c", 2, 11, "ok")}, true},
		{"retry skipped", []replayEvent{send(1, "c", 1, 10, "ok"), send(2, "c", 1, 10, "duplicate"), send(3, "c", 2, 11, "ok")}, true},
		{"request applied twice", []replayEvent{send(1, "c", 1, 10, "ok"), send(2, "c", 1, 11, "ok")}, false},
		{"message id applied twice", []replayEvent{send(1, "c", 1, 10, "ok"), send(2, "c", 2, 11, "ok"), send(3, "d", 1, 10, "ok")}, false},
		{"missing from the log", []replayEvent{send(1, "c", 1, 10, "ok")}, false},
		{"not in the history", []replayEvent{send(1, "c", 1, 10, "ok"), send(2, "c", 2, 11, "ok"), send(3, "c", 3, 12, "ok")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			checkReplayedSends(r, tc.evs, senders, want)
			if tc.ok {
				assert.Empty(t, r.errs)
			} else {
				assert.NotEmpty(t, r.errs, "violation not reported")
			}
		})
	}
}
