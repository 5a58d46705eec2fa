package bench

// Disk accounting: a directory's file sizes and allocated space, the
// sampler's series, and the growth figures judged on allocated space.

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDirUsage(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "log"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "state"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "statex"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state", "s"), make([]byte, 20000), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "statex", "s"), make([]byte, 8000), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a"), make([]byte, 10000), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "log", "b"), make([]byte, 5000), 0o644))
	// A sparse file, as Badger preallocates: large, hardly allocated.
	f, err := os.Create(filepath.Join(dir, "log", "sparse"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(64<<20))
	require.NoError(t, f.Close())

	u, err := dirUsage(dir)
	require.NoError(t, err)
	assert.Equal(t, int64(10000+5000+20000+8000+64<<20), u.Bytes)
	assert.GreaterOrEqual(t, u.Allocated, int64(43000), "the written files are allocated")
	assert.Less(t, u.Allocated, int64(1<<20), "the sparse file is not")
	assert.GreaterOrEqual(t, u.Dirs["state"], int64(20000), "by top-level directory")
	assert.Less(t, u.Dirs["state"], int64(28000), "a sibling named like it apart")
	assert.GreaterOrEqual(t, u.Dirs["statex"], int64(8000))
	assert.GreaterOrEqual(t, u.Dirs["log"], int64(5000))
	assert.Less(t, u.Dirs["log"], int64(1<<20), "the sparse file is not allocated")
	assert.GreaterOrEqual(t, u.Dirs["."], int64(10000), "files at the top")
	var sum int64
	for _, v := range u.Dirs {
		sum += v
	}
	assert.Equal(t, u.Allocated, sum)

	_, err = dirUsage(filepath.Join(dir, "missing"))
	assert.Error(t, err)
}

func TestDiskSampler(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	d := newDiskSampler(dirs, time.Now())
	d.sample()
	require.NoError(t, os.WriteFile(filepath.Join(dirs[1], "x"), make([]byte, 100), 0o644))
	d.sample()
	s := d.series()
	require.Len(t, s, 2)
	require.Len(t, s["0"], 2)
	require.Len(t, s["1"], 2)
	assert.Equal(t, int64(0), s["1"][0].Bytes)
	assert.Equal(t, int64(100), s["1"][1].Bytes)
	assert.LessOrEqual(t, s["1"][0].Sec, s["1"][1].Sec)

	require.NoError(t, os.RemoveAll(dirs[0]))
	d.sample()
	assert.Len(t, d.series()["0"], 2, "a directory that cannot be read is left out of the sample")
}

func TestDiskGrowth(t *testing.T) {
	const mib = 1 << 20
	series := map[string][]DiskSample{
		// Grows 1 MiB/s for 5 s, then flat: a bounded log after warm-up.
		"0": {{Sec: 0, Bytes: 300 * mib, Allocated: 0}, {Sec: 1, Bytes: 300 * mib, Allocated: 1 * mib}, {Sec: 2, Bytes: 300 * mib, Allocated: 2 * mib}, {Sec: 3, Bytes: 300 * mib, Allocated: 3 * mib},
			{Sec: 4, Bytes: 300 * mib, Allocated: 4 * mib}, {Sec: 5, Bytes: 300 * mib, Allocated: 5 * mib}, {Sec: 6, Bytes: 300 * mib, Allocated: 5 * mib}, {Sec: 7, Bytes: 300 * mib, Allocated: 5 * mib},
			{Sec: 8, Bytes: 300 * mib, Allocated: 5 * mib}, {Sec: 9, Bytes: 300 * mib, Allocated: 5 * mib}, {Sec: 10.01, Bytes: 400 * mib, Allocated: 5 * mib},
			{Sec: 12, Bytes: 400 * mib, Allocated: 9 * mib}}, // after the load: not counted
		// Grows 1 MiB/s throughout.
		"1": {{Sec: 0, Bytes: 0, Allocated: 0}, {Sec: 2, Bytes: 0, Allocated: 2 * mib}, {Sec: 4, Bytes: 0, Allocated: 4 * mib}, {Sec: 6, Bytes: 0, Allocated: 6 * mib}, {Sec: 8, Bytes: 0, Allocated: 8 * mib}, {Sec: 10, Bytes: 0, Allocated: 10 * mib}},
	}
	// The state grows 1 MiB/s (messages kept), the log stays at 3 MiB
	// (compacted).
	for s := range 11 {
		series["2"] = append(series["2"], DiskSample{Sec: float64(s), Allocated: int64(3*mib + s*mib),
			Dirs: map[string]int64{"log": 3 * mib, "state": int64(s * mib)}})
	}
	g := diskGrowth(series, 0, 10, 10*mib/100) // 100 bytes a send at 1 MiB/s
	require.Len(t, g, 3)
	require.NotNil(t, g["2"].SecondHalfBytesPerSend)
	assert.InDelta(t, 100.0, *g["2"].SecondHalfBytesPerSend, 0.01)
	require.Contains(t, g["2"].SecondHalfDirBytesPerSend, "log")
	assert.InDelta(t, 0.0, g["2"].SecondHalfDirBytesPerSend["log"], 0.01, "the log: flat")
	assert.InDelta(t, 100.0, g["2"].SecondHalfDirBytesPerSend["state"], 0.01)
	assert.Equal(t, map[string]int64{"log": 3 * mib, "state": 10 * mib}, g["2"].EndDirBytes)
	assert.Nil(t, g["1"].SecondHalfDirBytesPerSend, "no directories measured")
	assert.Equal(t, int64(0), g["0"].StartBytes)
	assert.Equal(t, int64(5*mib), g["0"].EndBytes, "by allocated space")
	assert.Equal(t, int64(400*mib), g["0"].EndFileBytes)
	assert.Equal(t, int64(5*mib), g["0"].MaxBytes)
	assert.InDelta(t, 50.0, g["0"].BytesPerSend, 0.01)
	require.NotNil(t, g["0"].SecondHalfBytesPerSend)
	assert.InDelta(t, 0.0, *g["0"].SecondHalfBytesPerSend, 0.01, "flat after warm-up")
	require.NotNil(t, g["1"].SecondHalfBytesPerSend)
	assert.InDelta(t, 100.0, *g["1"].SecondHalfBytesPerSend, 0.01)

	short := diskGrowth(map[string][]DiskSample{"0": {{Sec: 0, Bytes: 0, Allocated: 0}, {Sec: 1, Bytes: 0, Allocated: 100}}}, 0, 1, 10)
	assert.Nil(t, short["0"].SecondHalfBytesPerSend, "too few samples for a slope")
	short = diskGrowth(map[string][]DiskSample{"0": {{Sec: 0, Bytes: 0, Allocated: 0}, {Sec: 1, Bytes: 0, Allocated: 100}, {Sec: 2, Bytes: 0, Allocated: 150}, {Sec: 2.5, Bytes: 0, Allocated: 180}, {Sec: 3, Bytes: 0, Allocated: 200}}}, 0, 3, 10)
	assert.Nil(t, short["0"].SecondHalfBytesPerSend, "samples spanning less than 2s")
	assert.Nil(t, diskGrowth(series, 0, 10, 0), "no sends, no figure")
}
