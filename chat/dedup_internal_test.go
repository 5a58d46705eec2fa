package chat

// Goal: a client's idle index entry moves only when its clock advanced by
// dedupIdleGrain (not on every request), and expiry allows for that lag: a
// client is dropped only after DedupIdleNanos of real silence, and is
// dropped once it has been silent long enough.

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// idleLog builds records of chat requests at chosen log times.
type idleLog struct {
	t    *testing.T
	recs []eventlog.Record
}

// at appends a request of client at time t: a register of a fresh name,
// which succeeds and so stores a result.
func (l *idleLog) at(client string, t int64) []eventlog.Record {
	n := len(l.recs) + 1
	typ, data, err := EncodeEvent(&RegisterEvent{Name: "u" + string(rune('a'+n%26)) + string(rune('a'+n/26)), PasswordHash: "$argon2id$x"})
	require.NoError(l.t, err)
	rec := eventlog.Record{Offset: eventlog.Offset(n), Epoch: 1, Type: typ, ClientID: client, Seq: uint64(n), Time: t, Data: data}
	l.recs = append(l.recs, rec)
	return []eventlog.Record{rec}
}

// idleEntries returns the times of client's idle index entries.
func idleEntries(t *testing.T, st *State, client string) []int64 {
	var times []int64
	require.NoError(t, st.store.View(func(kv KV) error {
		return kv.Scan(prefixIdle, nil, func(k, _ []byte) (bool, error) {
			if string(k[len(prefixIdle)+8+2:]) == client {
				times = append(times, int64(binary.BigEndian.Uint64(k[len(prefixIdle):])))
			}
			return true, nil
		})
	}))
	return times
}

func TestDedup_IdleIndexMovesByTheGrain(t *testing.T) {
	const t0, minute = int64(1_700_000_000e9), int64(60e9)
	st := NewState(NewMemStore())
	log := &idleLog{t: t}
	for _, dt := range []int64{0, 10 * minute, 59 * minute} {
		require.NoError(t, st.Apply(log.at("bot", t0+dt)))
		assert.Equal(t, []int64{t0}, idleEntries(t, st, "bot"), "within the grain, the entry stays")
	}
	require.NoError(t, st.Apply(log.at("bot", t0+61*minute)))
	assert.Equal(t, []int64{t0 + 61*minute}, idleEntries(t, st, "bot"), "past it, the entry moves")
	require.NoError(t, st.Check())
}

func TestDedup_ExpiryWaitsForRealSilence(t *testing.T) {
	const t0, minute = int64(1_700_000_000e9), int64(60e9)
	st := NewState(NewMemStore())
	log := &idleLog{t: t}
	require.NoError(t, st.Apply(log.at("bot", t0)))
	last := t0 + 59*minute // recorded as t0: within the grain
	require.NoError(t, st.Apply(log.at("bot", last)))
	seq := uint64(len(log.recs))

	known := func() bool {
		_, ok, err := st.Result("bot", seq)
		require.NoError(t, err)
		return ok
	}
	// Another client's requests move the clock on, once per expiry period,
	// so that expiry looks at each, the last one included.
	for now := last + 30*minute; now < last+DedupIdleNanos-dedupExpiryPeriod; now += dedupExpiryPeriod {
		require.NoError(t, st.Apply(log.at("other", now)))
	}
	require.NoError(t, st.Apply(log.at("other", last+DedupIdleNanos-1)))
	assert.True(t, known(), "silent for less than DedupIdleNanos since its last request")

	require.NoError(t, st.Apply(log.at("other", last+DedupIdleNanos+dedupIdleGrain+dedupExpiryPeriod)))
	assert.False(t, known(), "expired once silent for DedupIdleNanos, plus the grain and the expiry period")
	assert.Empty(t, idleEntries(t, st, "bot"))
	require.NoError(t, st.Check())
}
