package eventlogtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// model is the obviously-correct reference the property tests compare an
// implementation against: every record ever written since the log began,
// with offsets implied by position, and no concern for efficiency.
type model struct {
	// all[i] has offset i+1. Offsets before first are compacted: their
	// records are kept only for their epochs (zero Records after Restore).
	all       []eventlog.Record
	first     eventlog.Offset
	baseEpoch eventlog.Epoch // epoch of offset first-1
	epochs    []eventlog.EpochStart
	rolled    []eventlog.Record
	meta      map[string][]byte
}

func newModel() *model { return &model{first: 1, meta: map[string][]byte{}} }

func (m *model) last() eventlog.Offset { return eventlog.Offset(len(m.all)) }

func (m *model) lastEpoch() eventlog.Epoch {
	if m.last() >= m.first {
		return m.all[m.last()-1].Epoch
	}
	return m.baseEpoch
}

func (m *model) retained() []eventlog.Record { return m.all[m.first-1:] }

// next returns n valid records following the model's last one, in epoch
// lastEpoch+bump.
func (m *model) next(rng *rand.Rand, n int, bump eventlog.Epoch) []eventlog.Record {
	epoch := m.lastEpoch() + bump
	if epoch == 0 {
		epoch = 1
	}
	recs := make([]eventlog.Record, n)
	for i := range recs {
		recs[i] = record(m.last()+eventlog.Offset(i)+1, epoch, rng.IntN(200))
	}
	return recs
}

func (m *model) append(recs []eventlog.Record) { m.all = append(m.all, recs...) }

func (m *model) truncate(after eventlog.Offset) {
	if after >= m.last() {
		return
	}
	m.rolled = append(m.rolled, m.all[after:]...)
	m.all = m.all[:after:after]
	i := len(m.epochs)
	for i > 0 && m.epochs[i-1].Start > after {
		i--
	}
	m.epochs = m.epochs[:i:i]
}

func (m *model) compact(upto eventlog.Offset) {
	if upto < m.first {
		return
	}
	m.baseEpoch = m.all[upto-1].Epoch
	m.first = upto + 1
}

func (m *model) restore(last eventlog.Offset, lastEpoch eventlog.Epoch, epochs []eventlog.EpochStart) {
	m.all = make([]eventlog.Record, last)
	m.first = last + 1
	m.baseEpoch = lastEpoch
	m.epochs = slices.Clone(epochs)
}

// record builds a deterministic record with size bytes of payload. Every
// field is set so that a field an implementation drops shows up as a diff.
func record(off eventlog.Offset, epoch eventlog.Epoch, size int) eventlog.Record {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(uint64(off)*31 + uint64(i))
	}
	return eventlog.Record{
		Offset:   off,
		Epoch:    epoch,
		Type:     fmt.Sprintf("test.%d", off%7),
		ClientID: fmt.Sprintf("client-%d", off%5),
		Seq:      uint64(off) * 3,
		Time:     1_700_000_000_000_000_000 + int64(off),
		Data:     data,
	}
}

// records builds n records from offset from, all in epoch.
func records(from eventlog.Offset, n int, epoch eventlog.Epoch) []eventlog.Record {
	recs := make([]eventlog.Record, n)
	for i := range recs {
		recs[i] = record(from+eventlog.Offset(i), epoch, 10+i%13)
	}
	return recs
}

// readAll reads every retained record of l in batches of about batchBytes,
// checking the pair assertion on the way: each batch starts where the last
// ended and offsets increase by one.
func readAll(t *testing.T, l eventlog.Log, batchBytes int) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	next, last := l.First(), l.Last()
	for next <= last {
		batch, err := l.Read(next, batchBytes)
		require.NoError(t, err, "read from %d", next)
		require.NotEmpty(t, batch, "read from %d <= last %d returned nothing", next, last)
		for _, r := range batch {
			require.Equal(t, next, r.Offset, "records not contiguous")
			next++
		}
		out = append(out, batch...)
	}
	return out
}

// rolledAll returns the whole rollback area of l.
func rolledAll(t *testing.T, l eventlog.Log) []eventlog.Record {
	t.Helper()
	recs, err := l.RolledBack(1 << 30)
	require.NoError(t, err)
	return recs
}

// assertMatches checks every observable part of l against m.
func assertMatches(t *testing.T, m *model, l eventlog.Log, step string) {
	t.Helper()
	require.Equal(t, m.first, l.First(), "%s: First", step)
	require.Equal(t, m.last(), l.Last(), "%s: Last", step)
	require.Equal(t, m.lastEpoch(), l.LastEpoch(), "%s: LastEpoch", step)
	require.Equal(t, nonNil(m.epochs), nonNil(l.Epochs()), "%s: Epochs", step)
	require.Equal(t, nonNil(m.retained()), nonNil(readAll(t, l, 300)), "%s: records", step)
	require.Equal(t, nonNil(m.rolled), nonNil(rolledAll(t, l)), "%s: rollback area", step)
	for name, want := range m.meta {
		got, ok, err := l.Meta(name)
		require.NoError(t, err)
		require.True(t, ok, "%s: meta %q missing", step, name)
		require.Equal(t, want, got, "%s: meta %q", step, name)
	}
}

// nonNil maps nil to an empty slice, so that "no elements" compares equal
// however an implementation spells it.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// propertyConfig sizes a random-operations run.
type propertyConfig struct {
	seed  uint64
	steps int
	// reopen, if set, replaces the log under test by a reopened one; the
	// durable suite uses it to check that nothing is lost across restarts.
	reopen func(l eventlog.Log) eventlog.Log
	// reopenEvery is the probability, in percent, of a reopen after a step.
	reopenEvery int
}

// runProperty applies random valid and invalid operations to l and to a
// model, comparing them after every step. Invalid operations must fail with
// the documented sentinel and change nothing.
func runProperty(t *testing.T, l eventlog.Log, cfg propertyConfig) eventlog.Log {
	t.Helper()
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	m := newModel()
	for step := range cfg.steps {
		desc := applyRandom(t, rng, m, l)
		assertMatches(t, m, l, fmt.Sprintf("seed %d step %d (%s)", cfg.seed, step, desc))
		if cfg.reopen != nil && rng.IntN(100) < cfg.reopenEvery {
			l = cfg.reopen(l)
			assertMatches(t, m, l, fmt.Sprintf("seed %d step %d (reopen after %s)", cfg.seed, step, desc))
		}
	}
	return l
}

// step is one random operation applied to both an implementation and the
// model; it returns a description for failure messages.
type step struct {
	t   *testing.T
	rng *rand.Rand
	m   *model
	l   eventlog.Log
}

// applyRandom performs one random operation on both m and l and describes it.
// Weights are percentages.
func applyRandom(t *testing.T, rng *rand.Rand, m *model, l eventlog.Log) string {
	t.Helper()
	s := step{t: t, rng: rng, m: m, l: l}
	ops := []struct {
		weight int
		fn     func() string
	}{
		{40, s.appendValid},
		{8, s.appendInvalid},
		{8, s.truncate},
		{4, s.truncateCompacted},
		{6, s.addEpochValid},
		{4, s.addEpochInvalid},
		{6, s.compact},
		{2, s.restore},
		{8, s.discard},
		{2, s.discardTooMany},
		{6, s.setMeta},
		{6, s.read},
	}
	pick := rng.IntN(100)
	for _, op := range ops {
		if pick < op.weight {
			return op.fn()
		}
		pick -= op.weight
	}
	panic("eventlogtest: operation weights do not add up to 100")
}

func (s step) mustFail(err, sentinel error, what string) string {
	s.t.Helper()
	require.ErrorIs(s.t, err, sentinel, what)
	return what
}

// appendValid appends records, sometimes in a new epoch.
func (s step) appendValid() string {
	recs := s.m.next(s.rng, 1+s.rng.IntN(6), eventlog.Epoch(s.rng.IntN(2)))
	require.NoError(s.t, s.l.Append(recs))
	s.m.append(recs)
	return fmt.Sprintf("append %d at %d", len(recs), recs[0].Offset)
}

// appendInvalid tries a gap, an overlap or an epoch going back.
func (s step) appendInvalid() string {
	m := s.m
	recs := m.next(s.rng, 1+s.rng.IntN(3), 0)
	switch s.rng.IntN(3) {
	case 0:
		recs[0].Offset += 1 + eventlog.Offset(s.rng.IntN(3))
	case 1:
		if recs[0].Offset == 1 {
			recs[0].Offset = 0
		} else {
			recs[0].Offset--
		}
	default:
		if m.lastEpoch() == 0 {
			recs[len(recs)-1].Offset += 5
		} else {
			recs[len(recs)-1].Epoch = m.lastEpoch() - 1
		}
	}
	return s.mustFail(s.l.Append(recs), eventlog.ErrNotContiguous, "invalid append")
}

// truncate cuts somewhere in the retained range, or past the end.
func (s step) truncate() string {
	lo := int(s.m.first) - 1
	after := eventlog.Offset(lo + s.rng.IntN(int(s.m.last())-lo+2))
	require.NoError(s.t, s.l.Truncate(after))
	s.m.truncate(after)
	return fmt.Sprintf("truncate after %d", after)
}

func (s step) truncateCompacted() string {
	if s.m.first < 2 {
		return "skip"
	}
	return s.mustFail(s.l.Truncate(s.m.first-2), eventlog.ErrCompacted, "truncate below first")
}

func (s step) addEpochValid() string {
	m := s.m
	e := eventlog.EpochStart{Epoch: m.lastEpoch() + 1 + eventlog.Epoch(s.rng.IntN(2)), Start: m.last() + 1}
	if n := len(m.epochs); n > 0 {
		e.Epoch = max(e.Epoch, m.epochs[n-1].Epoch+1)
	}
	require.NoError(s.t, s.l.AddEpoch(e))
	m.epochs = append(m.epochs, e)
	return fmt.Sprintf("add epoch %v", e)
}

func (s step) addEpochInvalid() string {
	m := s.m
	e := eventlog.EpochStart{Epoch: 0, Start: m.last() + 1}
	if n := len(m.epochs); n > 0 && s.rng.IntN(2) == 0 {
		e.Epoch = m.epochs[n-1].Epoch
	} else if s.rng.IntN(2) == 0 {
		e = eventlog.EpochStart{Epoch: 1 << 40, Start: m.last() + 2}
	}
	return s.mustFail(s.l.AddEpoch(e), eventlog.ErrEpochOrder, fmt.Sprintf("invalid epoch %v", e))
}

// compact discards part of the retained range.
func (s step) compact() string {
	m := s.m
	if m.last() < m.first {
		return s.mustFail(s.l.Compact(m.last()+1), eventlog.ErrOutOfRange, "compact past end")
	}
	upto := m.first + eventlog.Offset(s.rng.IntN(int(m.last()-m.first)+1))
	require.NoError(s.t, s.l.Compact(upto))
	m.compact(upto)
	return fmt.Sprintf("compact to %d", upto)
}

// restore installs a snapshot at or ahead of the log.
func (s step) restore() string {
	m := s.m
	last := m.last() + eventlog.Offset(s.rng.IntN(20))
	epoch := m.lastEpoch() + eventlog.Epoch(s.rng.IntN(3))
	epochs := slices.Clone(m.epochs)
	if s.rng.IntN(2) == 0 {
		ep := epoch + 1
		if n := len(epochs); n > 0 {
			ep = max(ep, epochs[n-1].Epoch+1)
		}
		epochs = append(epochs, eventlog.EpochStart{Epoch: ep, Start: last + 1})
	}
	require.NoError(s.t, s.l.Restore(last, epoch, epochs))
	m.restore(last, epoch, epochs)
	return fmt.Sprintf("restore to %d epoch %d", last, epoch)
}

func (s step) discard() string {
	n := s.rng.IntN(len(s.m.rolled) + 1)
	require.NoError(s.t, s.l.DiscardRolledBack(n))
	s.m.rolled = s.m.rolled[n:]
	return fmt.Sprintf("discard %d", n)
}

func (s step) discardTooMany() string {
	return s.mustFail(s.l.DiscardRolledBack(len(s.m.rolled)+1), eventlog.ErrOutOfRange, "discard too many")
}

func (s step) setMeta() string {
	name := fmt.Sprintf("k%d", s.rng.IntN(4))
	value := make([]byte, s.rng.IntN(40))
	for i := range value {
		value[i] = byte(s.rng.Uint32())
	}
	require.NoError(s.t, s.l.SetMeta(name, value))
	s.m.meta[name] = value
	return "set meta " + name
}

// read reads from a random offset in a random batch size and checks that
// the batch is the shortest prefix reaching maxBytes.
func (s step) read() string {
	t, m := s.t, s.m
	if m.last() < m.first {
		got, err := s.l.Read(m.first, 1)
		require.NoError(t, err)
		require.Empty(t, got)
		return "read empty"
	}
	from := m.first + eventlog.Offset(s.rng.IntN(int(m.last()-m.first)+1))
	maxBytes := s.rng.IntN(400)
	got, err := s.l.Read(from, maxBytes)
	require.NoError(t, err)
	require.NotEmpty(t, got)
	require.LessOrEqual(t, len(got), int(m.last()-from)+1, "read past the end")
	require.Equal(t, m.all[from-1:int(from-1)+len(got)], got)
	total := 0
	for i, r := range got {
		require.Less(t, total, max(maxBytes, 1), "record %d read after reaching maxBytes", i)
		total += encodedSize(t, r)
	}
	if got[len(got)-1].Offset < m.last() {
		require.GreaterOrEqual(t, total, maxBytes, "read stopped early")
	}
	return fmt.Sprintf("read from %d max %d", from, maxBytes)
}

func encodedSize(t *testing.T, r eventlog.Record) int {
	t.Helper()
	b, err := eventlog.EncodeRecord(r)
	require.NoError(t, err)
	return len(b)
}
