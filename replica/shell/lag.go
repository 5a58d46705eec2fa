package shell

import (
	"sync"

	"github.com/replichat/replichat/eventlog"
)

// LagSample is the replication lag of one offset to one backup, on the
// primary's clock (Unix nanoseconds): when the primary's append was durable,
// and when the backup's acknowledgement that it holds it durably arrived.
type LagSample struct {
	Seq        uint64
	Offset     uint64
	Replica    uint32
	AppendedAt int64
	DurableAt  int64
}

// appendTimes remembers when the primary's own append of each recent offset
// became durable, in a ring indexed by offset. Only the loop uses it.
type appendTimes struct {
	offs  []uint64
	times []int64
}

func (a *appendTimes) init(n int) {
	a.offs = make([]uint64, n)
	a.times = make([]int64, n)
}

func (a *appendTimes) put(off eventlog.Offset, at int64) {
	o := uint64(off)
	i := o % uint64(len(a.offs))
	a.offs[i], a.times[i] = o, at
}

func (a *appendTimes) get(off eventlog.Offset) (int64, bool) {
	o := uint64(off)
	i := o % uint64(len(a.offs))
	if a.offs[i] != o {
		return 0, false
	}
	return a.times[i], true
}

// lagRing is a bounded buffer of lag samples that readers page through by
// sequence number. The loop adds; the metrics op reads.
type lagRing struct {
	// observe is Config.ObserveLag (nil: none). It sees every sample, as
	// it is taken, so a consumer that must not miss any (a metrics
	// histogram) need not page through the ring faster than it wraps.
	// Called on the loop, outside mu: it must be cheap and must not block.
	observe func(LagSample)

	mu      sync.Mutex
	buf     []LagSample
	next    uint64 // sequence number of the next sample; samples are 1..next-1
	dropped uint64 // overwritten before any reader fetched them
	read    uint64 // highest sequence number handed to a reader
}

func (r *lagRing) init(n int, observe func(LagSample)) {
	r.buf = make([]LagSample, n)
	r.next = 1
	r.observe = observe
}

func (r *lagRing) add(replica uint32, off uint64, appendedAt, durableAt int64) {
	r.mu.Lock()
	i := r.next % uint64(len(r.buf))
	if old := r.buf[i]; old.Seq != 0 && old.Seq > r.read {
		r.dropped++
	}
	s := LagSample{Seq: r.next, Offset: off, Replica: replica, AppendedAt: appendedAt, DurableAt: durableAt}
	r.buf[i] = s
	r.next++
	r.mu.Unlock()
	if r.observe != nil {
		r.observe(s)
	}
}

// LagSamples returns up to limit samples with Seq > after, the Seq of the
// last one returned (after if none), and how many samples were dropped
// unread so far.
func (s *Shell) LagSamples(after uint64, limit int) ([]LagSample, uint64, uint64) {
	r := &s.lag
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := uint64(1)
	if r.next > uint64(len(r.buf)) {
		oldest = r.next - uint64(len(r.buf))
	}
	from := max(after+1, oldest)
	out := make([]LagSample, 0, min(uint64(limit), r.next-min(from, r.next)))
	seq := from
	for ; seq < r.next && len(out) < limit; seq++ {
		out = append(out, r.buf[seq%uint64(len(r.buf))])
	}
	last := after
	if len(out) > 0 {
		last = out[len(out)-1].Seq
		r.read = max(r.read, last)
	}
	return out, last, r.dropped
}
