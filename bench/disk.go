package bench

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// diskInterval is how often every replica's data directory is measured.
const diskInterval = time.Second

// DiskSample is one measurement of a replica's data directory.
type DiskSample struct {
	Sec float64 `json:"sec"` // since the start of the load
	// Bytes is the sum of the sizes of the files under the directory.
	Bytes int64 `json:"bytes"`
	// Allocated is the space those files occupy on the disk (their
	// blocks, as du counts them). It is what the disk use is judged by:
	// Badger preallocates sparse files (a value log file of twice its
	// configured size, a memtable file), so that Bytes jumps by a hundred
	// MiB at a new file while hardly a block is written.
	Allocated int64 `json:"allocated"`
	// Dirs is Allocated by the data directory's top-level entries (chatd's
	// log, state and snapshots directories; "." for files at the top):
	// compaction bounds the log, while the state and the snapshots (a copy
	// of it) grow with the messages users keep.
	Dirs map[string]int64 `json:"dirs"`
}

// DiskGrowth is how a replica's data directory grew during the load phase,
// by allocated space (DiskSample.Allocated).
type DiskGrowth struct {
	StartBytes int64 `json:"start_bytes"` // at the start of the load
	EndBytes   int64 `json:"end_bytes"`   // at its end
	MaxBytes   int64 `json:"max_bytes"`   // the largest sample of the load
	// EndFileBytes is the sum of the file sizes at the end of the load.
	EndFileBytes int64 `json:"end_file_bytes"`
	// BytesPerSend is (EndBytes - StartBytes) over the sends acknowledged
	// in the load phase.
	BytesPerSend float64 `json:"bytes_per_send"`
	// SecondHalfBytesPerSend is the growth rate over the second half of
	// the load (a least-squares slope through its samples, bytes/s) over
	// the load's sends/s: about 0 when disk use is flat after warm-up; nil
	// with fewer than 3 samples in that half or when they span less than
	// 2s (a short load says nothing about the long run).
	SecondHalfBytesPerSend *float64 `json:"second_half_bytes_per_send"`
	// EndDirBytes is EndBytes by top-level entry (DiskSample.Dirs), and
	// SecondHalfDirBytesPerSend the second half's growth rate of each, as
	// SecondHalfBytesPerSend: the log's is about 0 after warm-up even while
	// the state and the snapshots grow with the messages users keep.
	EndDirBytes               map[string]int64   `json:"end_dir_bytes"`
	SecondHalfDirBytesPerSend map[string]float64 `json:"second_half_dir_bytes_per_send"`
}

// logSubdir is the log's directory in a data directory (cmd/chatd's
// layout): the part of the disk that compaction bounds.
const logSubdir = "log"

// dirUsage measures every file under dir: the sum of their sizes, their
// allocated space, and that by top-level entry. Files that vanish while it
// walks (a store compacting) are skipped.
func dirUsage(dir string) (DiskSample, error) {
	u := DiskSample{Dirs: map[string]int64{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		alloc := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			alloc = st.Blocks * 512 // st_blocks is in 512-byte units
		}
		u.Bytes += info.Size()
		u.Allocated += alloc
		top := "."
		if rel, err := filepath.Rel(dir, path); err == nil {
			if first, _, nested := strings.Cut(rel, string(filepath.Separator)); nested {
				top = first
			}
		}
		u.Dirs[top] += alloc
		return nil
	})
	return u, err
}

// diskSampler measures every replica's data directory over time. Its
// methods are safe for concurrent use.
type diskSampler struct {
	dirs   []string // by replica id
	origin time.Time

	mu      sync.Mutex
	samples [][]DiskSample // by replica id, in time order
}

func newDiskSampler(dirs []string, origin time.Time) *diskSampler {
	return &diskSampler{dirs: dirs, origin: origin, samples: make([][]DiskSample, len(dirs))}
}

// sample measures every directory now. One that cannot be read is left out
// of this sample.
func (d *diskSampler) sample() {
	d.mu.Lock()
	defer d.mu.Unlock()
	sec := time.Since(d.origin).Seconds()
	for id, dir := range d.dirs {
		u, err := dirUsage(dir)
		if err != nil {
			continue
		}
		u.Sec = sec
		d.samples[id] = append(d.samples[id], u)
	}
}

// run samples every diskInterval until ctx ends, then once more.
func (d *diskSampler) run(ctx context.Context) {
	t := time.NewTicker(diskInterval)
	defer t.Stop()
	d.sample()
	for {
		select {
		case <-ctx.Done():
			d.sample()
			return
		case <-t.C:
			d.sample()
		}
	}
}

// series returns the samples by replica id as a string, for the JSON.
func (d *diskSampler) series() map[string][]DiskSample {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string][]DiskSample, len(d.samples))
	for id, s := range d.samples {
		m[strconv.Itoa(id)] = append([]DiskSample(nil), s...)
	}
	return m
}

// diskSlack is how far outside the load phase a sample may be taken and
// still count as its first or last: the harness samples right before the
// load starts and right after it ends.
const diskSlack = 250 * time.Millisecond

// minSlopeSpan is the least time the samples of a growth rate must span.
const minSlopeSpan = 2 * diskInterval

// diskGrowth computes each replica's growth over the load phase, [from, to]
// in seconds of the series, in which sends were acknowledged; nil without
// sends.
func diskGrowth(series map[string][]DiskSample, from, to float64, sends uint64) map[string]DiskGrowth {
	if sends == 0 || to <= from {
		return nil
	}
	slack := diskSlack.Seconds()
	rate := float64(sends) / (to - from)
	out := map[string]DiskGrowth{}
	for id, samples := range series {
		var load []DiskSample
		for _, s := range samples {
			if s.Sec >= from-slack && s.Sec <= to+slack {
				load = append(load, s)
			}
		}
		if len(load) == 0 {
			continue
		}
		last := load[len(load)-1]
		g := DiskGrowth{StartBytes: load[0].Allocated, EndBytes: last.Allocated, EndFileBytes: last.Bytes, EndDirBytes: last.Dirs}
		var xs, ys []float64
		dirs := map[string][]float64{}
		mid := (from + to) / 2
		for _, s := range load {
			g.MaxBytes = max(g.MaxBytes, s.Allocated)
			if s.Sec >= mid {
				xs, ys = append(xs, s.Sec), append(ys, float64(s.Allocated))
				for name := range last.Dirs {
					dirs[name] = append(dirs[name], float64(s.Dirs[name]))
				}
			}
		}
		g.BytesPerSend = float64(g.EndBytes-g.StartBytes) / float64(sends)
		if len(xs) >= 3 && xs[len(xs)-1]-xs[0] >= minSlopeSpan.Seconds() {
			if slope, ok := leastSquaresSlope(xs, ys); ok {
				g.SecondHalfBytesPerSend = ptr(slope / rate)
			}
			for name, v := range dirs {
				if slope, ok := leastSquaresSlope(xs, v); ok {
					if g.SecondHalfDirBytesPerSend == nil {
						g.SecondHalfDirBytesPerSend = map[string]float64{}
					}
					g.SecondHalfDirBytesPerSend[name] = slope / rate
				}
			}
		}
		out[id] = g
	}
	return out
}

// leastSquaresSlope fits y = a + b*x and returns b; false if the xs do not
// vary.
func leastSquaresSlope(xs, ys []float64) (float64, bool) {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0, false
	}
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}
