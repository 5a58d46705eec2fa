package bench

import (
	"context"
	"sync"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// lagPollInterval is how often the poller fetches the primary's samples:
// often enough that its bounded buffer does not overflow under load.
const lagPollInterval = 50 * time.Millisecond

// lagPoller fetches the primary's replication lag samples (the metrics op)
// and folds them into histograms and series. It follows the primary across
// failover. Its methods are safe for concurrent use.
type lagPoller struct {
	addrs []string

	mu sync.Mutex // serializes fetches and guards everything below
	// conn is the connection to the replica believed primary, nil when
	// there is none; after is the last sample sequence fetched from it
	// (sequences are per primary, so it restarts at 0 with a new one).
	conn  *probeConn
	after uint64
	// window is the load phase's span of append times [from, to); samples
	// appended in it count toward the steady-state figures. to is zero
	// while the phase runs.
	from, to time.Time
	// frozen stops the steady-state figures once the load phase's samples
	// have been fetched. Later samples are only plotted: a replica that
	// becomes primary reports lag for offsets it appended as a backup
	// before the election, appended during the load but not lagging then.
	frozen  bool
	durable Histogram // DurableAt - AppendedAt, load phase
	applied Histogram // AppliedAt - AppendedAt when known, load phase
	series  *Series   // durable lag over the whole run
	samples uint64
	// dropped is the samples the previous primaries discarded unread;
	// connDropped the current one's (its count is cumulative).
	dropped, connDropped uint64
}

func newLagPoller(addrs []string, origin time.Time, window time.Duration) *lagPoller {
	return &lagPoller{addrs: addrs, series: NewSeries(origin, window)}
}

// run fetches every lagPollInterval until ctx ends. Errors (a primary that
// died, an election under way) are expected during the faults this harness
// injects; fetch retries on the next tick.
func (l *lagPoller) run(ctx context.Context) {
	for {
		l.fetch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(lagPollInterval):
		}
	}
}

// fetch pulls every sample the primary holds now. It returns false if it
// could not reach a primary.
func (l *lagPoller) fetch(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil && !l.connect(ctx) {
		return false
	}
	for ctx.Err() == nil {
		var resp wire.MetricsResponse
		if err := l.conn.call(ctx, wire.OpMetrics, wire.MetricsRequest{After: l.after}, &resp); err != nil {
			l.conn.close()
			l.conn = nil
			return false
		}
		l.connDropped = max(l.connDropped, resp.Dropped)
		for _, s := range resp.Samples {
			l.add(s)
		}
		if len(resp.Samples) == 0 || resp.Next <= l.after {
			return true
		}
		l.after = resp.Next
	}
	return false
}

// connect finds the replica that answers as primary.
func (l *lagPoller) connect(ctx context.Context) bool {
	for _, addr := range l.addrs {
		p, err := dialProbe(ctx, addr, "chatbench-metrics")
		if err != nil {
			continue
		}
		if p.hello.Role == wire.RolePrimary {
			l.conn, l.after = p, 0
			l.dropped += l.connDropped
			l.connDropped = 0
			return true
		}
		p.close()
	}
	return false
}

func (l *lagPoller) add(s wire.LagSample) {
	if s.AppendedAt == 0 || s.DurableAt == 0 {
		return
	}
	l.samples++
	at := time.Unix(0, s.AppendedAt)
	lag := time.Duration(s.DurableAt - s.AppendedAt)
	if at.Before(l.series.origin) {
		// Appended before the timeline starts (the registrations, before
		// the idle phase): neither plotted nor in the load phase.
		return
	}
	l.series.Add(at, lag)
	inPhase := !l.frozen && !l.from.IsZero() && !at.Before(l.from) && (l.to.IsZero() || at.Before(l.to))
	if !inPhase {
		return
	}
	l.durable.Record(lag)
	if s.AppliedAt != 0 {
		l.applied.Record(time.Duration(s.AppliedAt - s.AppendedAt))
	}
}

// measure sets the load phase's span; a zero to means it is still running.
func (l *lagPoller) measure(from, to time.Time) {
	l.mu.Lock()
	l.from, l.to = from, to
	l.mu.Unlock()
}

// freeze fetches the samples the primary holds and then stops the
// steady-state figures.
func (l *lagPoller) freeze(ctx context.Context) {
	l.fetch(ctx)
	l.mu.Lock()
	l.frozen = true
	l.mu.Unlock()
}

// lagFigures are the lag histograms of the load phase.
type lagFigures struct {
	durable, applied Histogram
	samples, dropped uint64
	points           []Point
}

func (l *lagPoller) figures() lagFigures {
	l.mu.Lock()
	defer l.mu.Unlock()
	var f lagFigures
	f.durable.Merge(&l.durable)
	f.applied.Merge(&l.applied)
	f.samples, f.dropped = l.samples, l.dropped+l.connDropped
	f.points = l.series.Points()
	return f
}

func (l *lagPoller) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.close()
		l.conn = nil
	}
}
