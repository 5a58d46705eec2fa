package bench

// CPU accounting: /proc/PID/stat parsed right (a command name with spaces
// and parentheses included), per-send and per-core figures computed from a
// fake /proc, and a replica restarted in between left out, not miscounted.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeProc is a proc file system in a temporary directory.
type fakeProc struct {
	t  *testing.T
	fs procFS
}

func newFakeProc(t *testing.T) *fakeProc {
	return &fakeProc{t: t, fs: procFS{root: t.TempDir()}}
}

// set writes /proc/PID/stat for pid ("self" or a number) with the given
// utime and stime in clock ticks, in the kernel's layout.
func (f *fakeProc) set(pid string, utime, stime uint64) {
	f.t.Helper()
	dir := filepath.Join(f.fs.root, pid)
	require.NoError(f.t, os.MkdirAll(dir, 0o755))
	// pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice ...
	line := fmt.Sprintf("%s (chat d) (x)) S 1 2 3 0 -1 4194560 900 0 1 0 %d %d 77 88 20 0 12 0 555 1000000 300\n",
		pid, utime, stime)
	require.NoError(f.t, os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644))
}

func (f *fakeProc) remove(pid string) {
	require.NoError(f.t, os.RemoveAll(filepath.Join(f.fs.root, pid)))
}

func TestProcFS_CPUTime(t *testing.T) {
	p := newFakeProc(t)
	p.set("42", 150, 50) // 200 ticks of 10ms; children's 77+88 not counted
	d, err := p.fs.cpuTime("42")
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, d)

	_, err = p.fs.cpuTime("43")
	assert.ErrorContains(t, err, "read cpu time")

	require.NoError(t, os.MkdirAll(filepath.Join(p.fs.root, "44"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(p.fs.root, "44", "stat"), []byte("44 (x) S 1 2\n"), 0o644))
	_, err = p.fs.cpuTime("44")
	assert.ErrorContains(t, err, "fields after the command name")

	require.NoError(t, os.WriteFile(filepath.Join(p.fs.root, "44", "stat"), []byte("44 x S 1 2\n"), 0o644))
	_, err = p.fs.cpuTime("44")
	assert.ErrorContains(t, err, "no command name")
}

func TestProcFS_Self(t *testing.T) {
	before, err := realProc.cpuTime("self")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// Burn CPU until the kernel's 10ms ticks show it.
	deadline := time.Now().Add(5 * time.Second)
	var after time.Duration
	x := 1
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x = x*31 + i
		}
		after, err = realProc.cpuTime("self")
		require.NoError(t, err)
		if after-before >= 50*time.Millisecond {
			break
		}
	}
	assert.GreaterOrEqual(t, after-before, 50*time.Millisecond, "this process's CPU time grows (x=%d)", x)
	self, err := realProc.cpuTime(strconv.Itoa(os.Getpid()))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, self, after, "self and the pid are one process")
}

func TestCPUPerSend(t *testing.T) {
	p := newFakeProc(t)
	pids := map[int]int{0: 100, 1: 101, 2: 102}
	p.set("100", 10, 10)
	p.set("101", 20, 0)
	p.set("102", 0, 30)
	p.set("self", 500, 0)
	from := takeCPU(p.fs, pids)
	// 10000 sends: the primary 0 uses 2.3s (230 µs a send), each backup
	// 1.5s (150 µs), this process 0.4s (40 µs).
	p.set("100", 10+130, 10+100)
	p.set("101", 20+100, 50)
	p.set("102", 75, 30+75)
	p.set("self", 540, 0)
	to := takeCPU(p.fs, pids)
	to.at = from.at.Add(10 * time.Second)

	c := cpuPerSend(from, to, 3, 10000)
	require.NotNil(t, c)
	require.NotNil(t, c.Total)
	assert.InDelta(t, 530.0, *c.Total, 1e-9)
	assert.Equal(t, map[string]float64{"0": 230, "1": 150, "2": 150}, c.ByReplica)
	require.NotNil(t, c.Harness)
	assert.InDelta(t, 40.0, *c.Harness, 1e-9)

	pct := cpuPercent(from, to)
	assert.InDelta(t, 23.0, pct["0"], 1e-9, "2.3s of CPU in 10s")
	assert.InDelta(t, 15.0, pct["1"], 1e-9)

	assert.Nil(t, cpuPerSend(from, to, 3, 0), "no sends, no figure")
}

func TestCPUPerSend_ReplicaRestartedOrGone(t *testing.T) {
	p := newFakeProc(t)
	p.set("100", 10, 0)
	p.set("101", 10, 0)
	p.set("102", 10, 0)
	from := takeCPU(p.fs, map[int]int{0: 100, 1: 101, 2: 102})
	p.set("100", 110, 0)
	p.set("103", 5, 0) // replica 1 restarted as pid 103
	p.remove("102")    // replica 2 exited
	p.remove("self")
	to := takeCPU(p.fs, map[int]int{0: 100, 1: 103, 2: 102})
	to.at = from.at.Add(time.Second)

	c := cpuPerSend(from, to, 3, 100)
	require.NotNil(t, c)
	assert.Equal(t, map[string]float64{"0": 10000}, c.ByReplica, "only the replica measured over the whole phase")
	assert.Nil(t, c.Total, "no total over part of the cluster")
	assert.Nil(t, c.Harness)
	assert.Equal(t, map[string]float64{"0": 100}, cpuPercent(from, to))

	none := takeCPU(p.fs, map[int]int{0: 0})
	assert.Empty(t, none.cpu, "a replica not running (pid 0) is not read")
	assert.Nil(t, cpuPercent(none, none))
}
