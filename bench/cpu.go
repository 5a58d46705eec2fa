package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: clock ticks of
// USER_HZ, which Linux fixes at 100 on every architecture (it is what
// sysconf(_SC_CLK_TCK) returns). A reading is thus exact to 10ms, which is
// why the idle measurement lasts seconds.
const userHZ = 100

// procFS reads process figures from a proc file system mounted at root;
// tests point it at a fake one.
type procFS struct{ root string }

// realProc is the system's /proc.
var realProc = procFS{root: "/proc"}

// cpuTime returns the CPU time, user plus system over all its threads, that
// process pid ("self" for this process) has used so far: utime + stime of
// /proc/PID/stat (fields 14 and 15, after the command name in parentheses,
// which may itself hold spaces and parentheses).
func (p procFS) cpuTime(pid string) (time.Duration, error) {
	path := filepath.Join(p.root, pid, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse %s: no command name", path)
	}
	// After the name: state (field 3), ppid, pgrp, session, tty_nr, tpgid,
	// flags, minflt, cminflt, majflt, cmajflt, utime (14), stime (15).
	fields := bytes.Fields(b[i+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("parse %s: %d fields after the command name", path, len(fields))
	}
	var ticks uint64
	for _, f := range [][]byte{fields[utime], fields[stime]} {
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", path, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// cpuSample is the CPU time used so far by every replica running at one
// moment, and by this process (the clients and the harness).
type cpuSample struct {
	at   time.Time
	pid  map[int]int           // replica id -> process id, running replicas
	cpu  map[int]time.Duration // replica id -> CPU time, those that could be read
	self time.Duration
	// selfOK is false when this process's CPU time could not be read.
	selfOK bool
}

// takeCPU reads the CPU time of the processes in pids (replica id -> pid;
// a pid of 0 is a replica not running) and of this process. A process that
// cannot be read (it exited) is left out.
func takeCPU(proc procFS, pids map[int]int) cpuSample {
	s := cpuSample{at: time.Now(), pid: map[int]int{}, cpu: map[int]time.Duration{}}
	for id, pid := range pids {
		if pid == 0 {
			continue
		}
		d, err := proc.cpuTime(strconv.Itoa(pid))
		if err != nil {
			continue
		}
		s.pid[id], s.cpu[id] = pid, d
	}
	if d, err := proc.cpuTime("self"); err == nil {
		s.self, s.selfOK = d, true
	}
	return s
}

// cpuUsed is the CPU each replica used between two samples, by id: only
// the replicas read in both samples as the same process (one restarted in
// between is left out).
func cpuUsed(from, to cpuSample) map[int]time.Duration {
	used := map[int]time.Duration{}
	for id, c1 := range to.cpu {
		c0, ok := from.cpu[id]
		if !ok || from.pid[id] != to.pid[id] {
			continue
		}
		used[id] = max(c1-c0, 0)
	}
	return used
}

// cpuPerSend is the CPU the replicas (and this process) used between two
// samples per acknowledged send, in microseconds. The total is nil unless
// every one of the replicas was measured; nil altogether without sends.
func cpuPerSend(from, to cpuSample, replicas int, sends uint64) *CPUPerSend {
	if sends == 0 {
		return nil
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(sends) }
	res := &CPUPerSend{ByReplica: map[string]float64{}}
	used := cpuUsed(from, to)
	var total time.Duration
	for id, d := range used {
		res.ByReplica[strconv.Itoa(id)] = us(d)
		total += d
	}
	if len(used) == replicas {
		res.Total = ptr(us(total))
	}
	if from.selfOK && to.selfOK {
		res.Harness = ptr(us(max(to.self-from.self, 0)))
	}
	return res
}

// cpuPercent is each replica's CPU between two samples as a percentage of
// one core, by id; nil when no time passed or no replica was measured.
func cpuPercent(from, to cpuSample) map[string]float64 {
	elapsed := to.at.Sub(from.at)
	used := cpuUsed(from, to)
	if elapsed <= 0 || len(used) == 0 {
		return nil
	}
	pct := map[string]float64{}
	for id, d := range used {
		pct[strconv.Itoa(id)] = 100 * float64(d) / float64(elapsed)
	}
	return pct
}
