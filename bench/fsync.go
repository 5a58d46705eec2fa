package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// fsyncBlock is the size of each probe write: a small record, like one group
// commit of a few events.
const fsyncBlock = 4096

// FsyncResult is the disk's write+fsync latency.
type FsyncResult struct {
	Samples  int
	P50, P99 time.Duration
	Max      time.Duration
}

// PerSec is the implied rate of back-to-back single fsyncs, 1/p50: the
// throughput a store would get with one fsync per write.
func (f FsyncResult) PerSec() float64 {
	if f.P50 <= 0 {
		return 0
	}
	return float64(time.Second) / float64(f.P50)
}

// ProbeFsync appends samples blocks of fsyncBlock bytes to a new file in dir,
// each followed by an fsync, and returns the latency of write+fsync. It stops
// early after maxTime (at least one sample is taken), or when ctx is done. The
// file is removed afterwards.
func ProbeFsync(ctx context.Context, dir string, samples int, maxTime time.Duration) (FsyncResult, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return FsyncResult{}, fmt.Errorf("create fsync probe file: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	defer f.Close()

	// Sync the new file's directory entry first, so that the probe measures
	// data syncs, not the file's creation.
	if err := f.Sync(); err != nil {
		return FsyncResult{}, fmt.Errorf("sync %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}

	block := make([]byte, fsyncBlock)
	for i := range block {
		block[i] = byte(i)
	}
	var h Histogram
	deadline := time.Now().Add(maxTime)
	for i := 0; i < max(samples, 1); i++ {
		if i > 0 && time.Now().After(deadline) {
			break
		}
		if err := ctx.Err(); err != nil {
			return FsyncResult{}, fmt.Errorf("probe fsync: %w", err)
		}
		start := time.Now()
		if _, err := f.Write(block); err != nil {
			return FsyncResult{}, fmt.Errorf("write %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return FsyncResult{}, fmt.Errorf("sync %s: %w", path, err)
		}
		h.Record(time.Since(start))
	}
	return FsyncResult{
		Samples: int(h.Count()),
		P50:     h.Quantile(0.5),
		P99:     h.Quantile(0.99),
		Max:     h.Max(),
	}, nil
}
