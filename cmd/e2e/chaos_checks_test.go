package e2e

// The chaos checks must be able to fail: each kind of violation is fed to
// analyzeChaos, whose report must count it and whose check must fail.

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

func TestChaosChecks_Detect(t *testing.T) {
	t.Parallel()
	// Sender a sent four messages to b: #0 and #1 acknowledged (ids 10,
	// 11), #2 refused with not_primary, #3 of unknown outcome.
	newSenders := func() []*chaosSender {
		a := &chaosSender{name: "a", peers: []string{"b"}}
		b := &chaosSender{name: "b", peers: []string{"a"}}
		a.sends = []sendRec{
			{from: "a", to: "b", body: a.body(0), out: acked, id: 10},
			{from: "a", to: "b", body: a.body(1), out: acked, id: 11},
			{from: "a", to: "b", body: a.body(2), out: definite, code: wire.CodeNotPrimary},
			{from: "a", to: "b", body: a.body(3), out: unknown, code: wire.CodeTimeout},
		}
		return []*chaosSender{a, b}
	}
	msg := func(id uint64, i int) wire.Message {
		return wire.Message{ID: id, From: "a", To: "b", Body: (&chaosSender{name: "a"}).body(i)}
	}
	ev := func(off uint64, client string, seq uint64, m wire.Message) replayEvent {
		return replayEvent{Offset: off, Type: "chat.send", Client: client, Seq: seq, ID: m.ID, From: m.From, To: m.To, Body: m.Body, Result: "ok"}
	}
	both := func(ms ...wire.Message) map[string][]wire.Message {
		return map[string][]wire.Message{"a": ms, "b": ms}
	}
	good := []wire.Message{msg(10, 0), msg(11, 1)}
	goodLog := []replayEvent{ev(1, "c", 1, msg(10, 0)), ev(2, "c", 2, msg(11, 1))}

	for _, tc := range []struct {
		name    string
		hist    map[string][]wire.Message
		log     []replayEvent
		ok      bool
		counted func(r chaosReport) int
	}{
		{"all there", both(good...), goodLog, true, nil},
		{"unknown applied once", both(msg(10, 0), msg(11, 1), msg(12, 3)),
			append(goodLog, ev(3, "c", 4, msg(12, 3))), true, func(r chaosReport) int { return r.UnknownApplied }},
		{"acked lost everywhere", both(msg(10, 0)), goodLog[:1], false, func(r chaosReport) int { return r.Missing + r.LogMissing }},
		{"acked lost from the recipient", map[string][]wire.Message{"a": good, "b": good[:1]}, goodLog, false, func(r chaosReport) int { return r.Missing }},
		{"acked lost from the log only", both(good...), goodLog[:1], false, func(r chaosReport) int { return r.LogMissing }},
		{"acked under another id", both(msg(10, 0), msg(13, 1)),
			[]replayEvent{ev(1, "c", 1, msg(10, 0)), ev(2, "c", 2, msg(13, 1))}, false, func(r chaosReport) int { return r.WrongID + r.LogWrongID }},
		{"duplicate in a history", both(msg(10, 0), msg(11, 1), msg(14, 1)), goodLog, false, func(r chaosReport) int { return r.Duplicated }},
		{"duplicate in the log", both(good...), append(goodLog, ev(3, "c", 9, msg(14, 1))), false, func(r chaosReport) int { return r.LogDuplicated }},
		{"request applied twice", both(msg(10, 0), msg(11, 1), msg(12, 3)),
			append(goodLog, ev(3, "c", 2, msg(12, 3))), false, func(r chaosReport) int { return r.LogDuplicated }},
		{"definite applied", both(msg(10, 0), msg(11, 1), msg(12, 2)),
			append(goodLog, ev(3, "c", 3, msg(12, 2))), false, func(r chaosReport) int { return r.DefiniteApplied + r.LogDefinite }},
		{"unknown applied twice", both(msg(10, 0), msg(11, 1), msg(12, 3), msg(15, 3)), goodLog, false, func(r chaosReport) int { return r.Duplicated }},
		{"unknown in one history", map[string][]wire.Message{"a": append(good, msg(12, 3)), "b": good},
			append(goodLog, ev(3, "c", 4, msg(12, 3))), false, func(r chaosReport) int { return r.Partial }},
		{"unknown in the log only", both(good...), append(goodLog, ev(3, "c", 4, msg(12, 3))), false, func(r chaosReport) int { return r.LogVsHistory }},
		{"phantom", both(msg(10, 0), msg(11, 1), wire.Message{ID: 20, From: "a", To: "b", Body: "never sent"}),
			append(goodLog, replayEvent{Offset: 3, Type: "chat.send", ID: 20, From: "a", To: "b", Body: "never sent", Result: "ok"}),
			false, func(r chaosReport) int { return r.Phantoms + r.LogPhantoms }},
		{"wrong recipient", both(msg(10, 0), wire.Message{ID: 11, From: "a", To: "a", Body: msg(11, 1).Body}), goodLog, false, func(r chaosReport) int { return r.Phantoms }},
		{"skipped entries are not applied", both(msg(10, 0), msg(11, 1)),
			append(goodLog, replayEvent{Offset: 3, Type: "chat.send", Client: "c", Seq: 2, ID: 11, From: "a", To: "b", Body: msg(11, 1).Body, Result: "duplicate"}),
			true, nil},
		{"order inversion is only counted", both(msg(11, 1), msg(10, 0)), goodLog, true, func(r chaosReport) int { return r.OrderInversions }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := analyzeChaos(newSenders(), tc.hist, tc.log)
			assert.Equal(t, 2, r.Acked)
			assert.Equal(t, 1, r.Definite)
			assert.Equal(t, 1, r.Unknown)
			rec := &recorder{}
			r.check(rec)
			if tc.ok {
				assert.Empty(t, rec.errs, "report: %s", r)
			} else {
				assert.NotEmpty(t, rec.errs, "violation not reported: %s", r)
			}
			if tc.counted != nil {
				assert.Positive(t, tc.counted(r), "report: %s", r)
			}
		})
	}

	// A sender's acknowledgement of another message is reported.
	s := newSenders()
	s[0].sends[0].err = "acknowledged as something else"
	rec := &recorder{}
	r := analyzeChaos(s, both(good...), goodLog)
	r.check(rec)
	assert.Equal(t, 1, r.BadAcks)
	assert.NotEmpty(t, rec.errs)
}

func TestChaosChecks_ClassifySend(t *testing.T) {
	t.Parallel()
	final := func(code wire.Code) error { return fmt.Errorf("send: %w", &client.Error{Code: code}) }
	for _, tc := range []struct {
		err  error
		want outcome
	}{
		{nil, acked},
		{final(wire.CodeUnknownUser), definite},
		{final(wire.CodeQueueFull), definite},
		{final(wire.CodeTimeout), unknown},
		{fmt.Errorf("send: %w after 10s: %w", client.ErrFailoverTimeout, &client.Error{Code: wire.CodeNotPrimary}), unknown},
		{fmt.Errorf("send: %w", client.ErrClosed), unknown},
		{context.Canceled, unknown},
	} {
		got, _ := classifySend(tc.err)
		assert.Equal(t, tc.want, got, "%v", tc.err)
	}
}
