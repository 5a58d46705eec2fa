package shell

import (
	"context"
	"io"
	"time"
)

// DefaultSnapshotShare is the share of one core a snapshot's writing may
// take (Config.SnapshotShare, chatd --snapshot-cpu). Writing a snapshot is
// as CPU-bound as applying. Measured on a 2-core machine (README,
// "Snapshots and compaction"): applying alone against applying while
// snapshots are written back to back loses 22% unpaced, 9-14% at half a
// core and 8% at a quarter (BenchmarkSnapshot in chat/server); a
// three-replica cluster on the same two cores, every replica writing
// snapshots back to back, acknowledges 25% fewer sends at half a core, 24%
// fewer at a quarter and 10% fewer at a fifth (three writers share the two
// cores there; a replica on its own machine pays what the benchmark
// measures). A quarter keeps the primary's cost well under the 20% bound;
// the snapshot then takes about 4.6 times its unpaced time (200k messages:
// 6.1 s against 1.3 s), which only delays the log's compaction.
const DefaultSnapshotShare = 0.25

// pacedWriter passes writes through, and after every paceEvery bytes sleeps
// long enough that the time spent producing and writing them is at most
// share of the wall clock. The time measured is wall time between sleeps,
// so time the producer waited for a core counts as work: pacing errs on the
// side of yielding.
type pacedWriter struct {
	ctx     context.Context
	w       io.Writer
	share   float64
	pending int
	since   time.Time
}

const paceEvery = 256 << 10

// Pace returns w paced to share of a core (see pacedWriter); share >= 1
// or <= 0 returns w itself. A sleep ends early when ctx is done, and the
// next write then fails with ctx's error.
func Pace(ctx context.Context, w io.Writer, share float64) io.Writer {
	if share <= 0 || share >= 1 {
		return w
	}
	return &pacedWriter{ctx: ctx, w: w, share: share, since: time.Now()}
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.pending += n
	if p.pending >= paceEvery {
		p.pending = 0
		work := time.Since(p.since)
		rest := time.Duration(float64(work) * (1 - p.share) / p.share)
		t := time.NewTimer(rest)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
		}
		p.since = time.Now()
	}
	return n, err
}
