package chat

// Goal: the hole ranges are kept exactly (split and shrunk as seqs fill
// them, counted in the client record), bounded by maxHolesPerClient with
// HoleFloor remembering what was forgotten, deleted with their client when
// it expires; and below HoleFloor a live request is refused while a
// re-submission is applied once (a send deduplicated by its message id).

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// holeLog builds the requests of one client "c".
type holeLog struct {
	t    *testing.T
	st   *State
	recs []eventlog.Record
}

func newHoleLog(t *testing.T) *holeLog {
	l := &holeLog{t: t, st: NewState(NewMemStore())}
	// ann (uid 1) receives the sends.
	l.add("reg", 1, &RegisterEvent{Name: "ann", PasswordHash: "$argon2id$x"}, false)
	return l
}

func (l *holeLog) add(client string, seq uint64, ev Event, resubmitted bool) eventlog.Record {
	typ, data, err := EncodeEvent(ev)
	require.NoError(l.t, err)
	rec := eventlog.Record{Offset: eventlog.Offset(len(l.recs) + 1), Epoch: 1, Type: typ, ClientID: client, Seq: seq,
		Time: 1_700_000_000e9, Data: data}
	if resubmitted {
		rec.OrigEpoch, rec.OrigOffset = 1, 1
	}
	l.recs = append(l.recs, rec)
	return rec
}

// send appends a send of (c, seq) to ann.
func (l *holeLog) send(seq uint64, resubmitted bool) eventlog.Record {
	return l.add("c", seq, &SendEvent{MessageID: MessageID("c", seq), FromUID: 1, ToUID: 1, Body: "x"}, resubmitted)
}

// cheap appends a request of (c, seq) that is rejected (a delivery for an
// unknown user): it stores a result and nothing else.
func (l *holeLog) cheap(seq uint64) {
	l.add("c", seq, &DeliverEvent{UID: 999, MessageIDs: []uint64{1}}, false)
}

func (l *holeLog) apply() []AppliedResult {
	l.t.Helper()
	res, err := l.st.ApplyWithResults(l.recs[l.st.Applied():])
	require.NoError(l.t, err)
	require.NoError(l.t, l.st.Check())
	return res
}

func (l *holeLog) client() clientRec {
	var c clientRec
	require.NoError(l.t, l.st.store.View(func(kv KV) error {
		_, err := getRec(kv, clientKey("c"), &c)
		return err
	}))
	return c
}

// holes returns the client's hole ranges, in order.
func (l *holeLog) holes(client string) []hole {
	var hs []hole
	require.NoError(l.t, l.st.store.View(func(kv KV) error {
		return kv.Scan(holePrefix(client), nil, func(k, v []byte) (bool, error) {
			hi, _ := suffixU64(k)
			lo, err := decodeU64(v)
			hs = append(hs, hole{lo, hi})
			return true, err
		})
	}))
	return hs
}

func TestHoles_SplitAndShrink(t *testing.T) {
	l := newHoleLog(t)
	for seq := uint64(1); seq <= 400; seq++ {
		if seq < 10 || seq > 20 {
			l.cheap(seq)
		}
	}
	l.apply()
	require.Equal(t, []hole{{10, 20}}, l.holes("c"))
	steps := []struct {
		seq  uint64
		want []hole
	}{
		{15, []hole{{10, 14}, {16, 20}}},
		{10, []hole{{11, 14}, {16, 20}}},
		{20, []hole{{11, 14}, {16, 19}}},
		{12, []hole{{11, 11}, {13, 14}, {16, 19}}},
		{11, []hole{{13, 14}, {16, 19}}},
	}
	for _, st := range steps {
		res := l.apply2(l.send(st.seq, true))
		assert.Equal(t, OutcomeApplied, res.Outcome, "seq %d", st.seq)
		assert.Equal(t, st.want, l.holes("c"), "after filling %d", st.seq)
		assert.Equal(t, uint64(len(st.want)), l.client().Holes)
	}
	res := l.apply2(l.send(15, true))
	assert.Equal(t, OutcomeDuplicate, res.Outcome, "filled once")
}

// apply2 applies the last record alone and returns its outcome.
func (l *holeLog) apply2(rec eventlog.Record) AppliedResult {
	l.t.Helper()
	res := l.apply()
	require.Len(l.t, res, 1)
	require.Equal(l.t, rec.Offset, res[0].Offset)
	return res[0]
}

func TestHoles_BoundAndTheUnknownRegion(t *testing.T) {
	l := newHoleLog(t)
	// Every other seq missing: each evicted result leaves a hole of one.
	const n = maxHolesPerClient + 600
	for i := uint64(1); i <= n; i++ {
		l.cheap(2 * i)
	}
	l.apply()
	c := l.client()
	require.Equal(t, uint64(maxHolesPerClient), c.Holes, "bounded")
	require.Positive(t, c.HoleFloor, "the oldest holes were forgotten")
	hs := l.holes("c")
	require.Len(t, hs, maxHolesPerClient)
	assert.Greater(t, hs[0].lo, c.HoleFloor)
	assert.LessOrEqual(t, hs[len(hs)-1].hi, c.Floor)

	unknown := c.HoleFloor // odd: a hole, forgotten
	require.Equal(t, uint64(1), unknown%2)
	_, ok, err := l.st.Result("c", unknown)
	require.NoError(t, err)
	assert.True(t, ok, "below HoleFloor: reported expired, the table cannot say more")

	// A live request there is refused, not applied.
	res := l.apply2(l.send(unknown, false))
	assert.Equal(t, OutcomeExpired, res.Outcome)
	assert.True(t, res.Unknown)
	assertMessages(t, l.st, 0)

	// A re-submission is applied, once: the copy is known by its message.
	res = l.apply2(l.send(unknown, true))
	assert.Equal(t, OutcomeApplied, res.Outcome)
	assert.True(t, res.Unknown)
	assert.Equal(t, MessageID("c", unknown), res.Result.MessageID)
	res = l.apply2(l.send(unknown, true))
	assert.Equal(t, OutcomeDuplicate, res.Outcome)
	assert.True(t, res.Unknown)
	assertMessages(t, l.st, 1)

	// A non-send re-submission there is applied (at worst a harmless
	// rejection: delivered twice, deleted twice, registered twice).
	r := l.add("c", unknown-2, &DeliverEvent{UID: 999, MessageIDs: []uint64{1}}, true)
	res = l.apply2(r)
	assert.Equal(t, OutcomeRejected, res.Outcome)
	assert.True(t, res.Unknown)

	// A kept hole is filled as usual.
	kept := hs[len(hs)-1].lo
	_, ok, err = l.st.Result("c", kept)
	require.NoError(t, err)
	assert.False(t, ok, "a kept hole is not applied")
	res = l.apply2(l.send(kept, false))
	assert.Equal(t, OutcomeApplied, res.Outcome)
	assert.False(t, res.Unknown)
	assert.Equal(t, uint64(maxHolesPerClient-1), l.client().Holes)
}

func assertMessages(t *testing.T, st *State, want int) {
	t.Helper()
	msgs, err := st.Unread(1, MaxQueryLimit)
	require.NoError(t, err)
	assert.Len(t, msgs, want)
}

func TestHoles_ExpireWithTheirClient(t *testing.T) {
	const t0 = int64(1_700_000_000e9)
	st := NewState(NewMemStore())
	log := &idleLog{t: t}
	// "bot" and "other" interleave: idleLog numbers seqs by offset, so each
	// has a seq missing between two of its own, and holes once evicted.
	for i := range 2 * (DedupWindow + dedupEvictBatch) {
		client := "bot"
		if i%2 == 1 {
			client = "other"
		}
		require.NoError(t, st.Apply(log.at(client, t0)))
	}
	l := &holeLog{t: t, st: st}
	require.NotEmpty(t, l.holes("bot"))
	for now := t0 + dedupExpiryPeriod; now < t0+DedupIdleNanos+dedupIdleGrain+2*dedupExpiryPeriod; now += dedupExpiryPeriod {
		require.NoError(t, st.Apply(log.at("other", now)))
	}
	assert.Empty(t, l.holes("bot"), "expired with its client")
	assert.NotEmpty(t, l.holes("other"))
	require.NoError(t, st.Check())
}
