package main

// Tests of the labels chatreplay gives records after a fork: a re-submitted
// record says so (and where its truncated copy was), and its result is what
// applying it did: applied into a dedup hole, dropped as a duplicate, or
// rejected. A request whose result the dedup window evicted as it applied
// is labelled by what applying it did, not by a later lookup.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

const someHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"

// buildForkLog writes a log whose end holds re-submissions, and returns
// the offsets of the records under test.
func buildForkLog(t *testing.T, dir string) (dup, lost, rejected, evicted eventlog.Offset) {
	b := newLogBuilder(t, dir)
	b.epoch(1)
	b.do("c-ann", chat.Register{Name: "ann", Password: "pw-ann"})
	b.do("c-bob", chat.Register{Name: "bob", Password: "pw-bob"})
	ann, bob := b.uid("ann"), b.uid("bob")
	first := b.do("c-ann", chat.Send{FromUID: ann, To: "bob", Body: "kept"}) // seq 2
	b.seqs["c-ann"]++                                                        // seq 3: applied on the losing side only
	for range chat.DedupWindow + 80 {
		// Rejected (user_exists), each storing a result: the window
		// passes seq 3, leaving it a hole.
		b.event("c-ann", &chat.RegisterEvent{Name: "bob", PasswordHash: someHash})
	}
	// "c-bot" has results for seqs 101-419; its seq 50 arrives late, and
	// storing its result evicts the lowest 64, itself among them.
	b.seqs["c-bot"] = 100
	for range 319 {
		b.event("c-bot", &chat.RegisterEvent{Name: "bob", PasswordHash: someHash})
	}
	b.seqs["c-bot"] = 49
	evicted = b.event("c-bot", &chat.RegisterEvent{Name: "late", PasswordHash: someHash}).Offset
	b.do("c-bob", chat.DeleteAccount{UID: bob})
	b.epoch(2)

	// The re-submissions of the losing side's truncated suffix.
	again := first
	again.Offset, again.Time, again.Epoch = 0, 0, 2
	again.OrigEpoch, again.OrigOffset = 1, 4
	dup = b.append(again).Offset

	typ, data, err := chat.EncodeEvent(&chat.SendEvent{MessageID: chat.MessageID("c-ann", 3), FromUID: ann, ToUID: ann, Body: "lost"})
	require.NoError(t, err)
	lost = b.append(eventlog.Record{Type: typ, Epoch: 2, ClientID: "c-ann", Seq: 3, Data: data, OrigEpoch: 1, OrigOffset: 5}).Offset

	typ, data, err = chat.EncodeEvent(&chat.SendEvent{MessageID: chat.MessageID("c-ann", 500), FromUID: ann, ToUID: bob, Body: "too late"})
	require.NoError(t, err)
	rejected = b.append(eventlog.Record{Type: typ, Epoch: 2, ClientID: "c-ann", Seq: 500, Data: data, OrigEpoch: 1, OrigOffset: 6}).Offset
	b.close()
	return dup, lost, rejected, evicted
}

func TestRun_ResubmissionLabels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dup, lost, rejected, evicted := buildForkLog(t, dir)

	out, errOut, err := replayOut(t, "--data", dir, "--json", "--mem")
	require.NoError(t, err, errOut)
	lines := map[eventlog.Offset]map[string]any{}
	for line := range strings.Lines(out) {
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &obj), line)
		lines[eventlog.Offset(obj["offset"].(float64))] = obj
	}
	origin := func(off eventlog.Offset) any { return lines[off]["resubmitted"] }
	for _, tc := range []struct {
		name   string
		off    eventlog.Offset
		result string
		origin any
	}{
		{"re-submitted, landed already", dup, "duplicate", map[string]any{"epoch": 1.0, "offset": 4.0}},
		{"re-submitted into a hole", lost, "ok", map[string]any{"epoch": 1.0, "offset": 5.0}},
		{"re-submitted, recipient deleted", rejected, "unknown_user", map[string]any{"epoch": 1.0, "offset": 6.0}},
		{"applied, its result evicted at once", evicted, "ok", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, lines, tc.off)
			assert.Equal(t, tc.result, lines[tc.off]["result"], "%v", lines[tc.off])
			assert.Equal(t, tc.origin, origin(tc.off))
		})
	}
	assert.Nil(t, origin(2), "a client's own request is not a re-submission")
	assert.Contains(t, lines[rejected]["error"], "unknown user")

	// The human format says it too.
	at := fmt.Sprint(lost)
	human, errOut, err := replayOut(t, "--data", dir, "--mem", "--from", at, "--to", at)
	require.NoError(t, err, errOut)
	assert.Contains(t, human, "  result=ok  client=c-ann  seq=3  resubmitted={\"epoch\":1,\"offset\":5}\n")
}
