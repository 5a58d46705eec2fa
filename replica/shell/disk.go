package shell

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/replichat/replichat/replica"
)

// A full disk is an expected condition, not a crash. Badger writes its
// write-ahead logs and tables through mmapped files; running out of space in
// one of them is a SIGBUS, which kills the process and, as the disk is still
// full at the next start, makes it crash-loop. So the shell never lets the
// disk fill up: it watches the free space (Config.DiskFree) against a
// reserve (Config.DiskReserve) on every tick, and below it tells the core
// (Node.SetDiskFull) to take no more writes. The applier goes on applying
// what is already committed (little: no proposal is taken meanwhile), so
// that a full primary's reads, which wait until its state has applied its
// commit (ReadBarrier), are still served. The reserve covers what Badger
// may still write meanwhile (those state transactions, a memtable's log, a
// flush, a compaction). When the free space is back above the reserve by a
// margin, everything resumes by itself.
//
// An ENOSPC that gets through anyway (a write of the log or of the state
// failing with it: a reserve too small, another process filling the disk,
// or the failpoints of the tests) is handled, not fatal either: a failed
// log write leaves the core believing in writes that did not happen, so the
// shell waits for room and then restarts the core from the log, in this
// process, as after a crash; a failed state transaction changed nothing and
// is retried once there is room.

// diskHysteresis is how far above the reserve the free space must climb
// before writes resume, so that a disk hovering at the reserve does not
// flip the replica in and out of service on every tick.
const diskHysteresis = 16 << 20

// noSpaceRetry and noSpaceRetryMax bound the wait before the core restarts
// after a write failed with ENOSPC.
const (
	noSpaceRetry    = time.Second
	noSpaceRetryMax = 30 * time.Second
)

// IsNoSpace reports whether err is (or reports) the filesystem being full.
// Badger formats some errors with %v, losing the errno; its text remains.
func IsNoSpace(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device"))
}

// diskCheckTicks is how often (in ticks) the guard reads the free space
// while there is plenty: a statfs on every tick was a tenth of an idle
// replica's system calls. Within twice the reserve, or while full, it reads
// it on every tick.
const diskCheckTicks = 10

// diskCheckDue reports whether this tick reads the free space.
func (s *Shell) diskCheckDue() bool {
	if s.cfg.DiskFree == nil {
		return false
	}
	near := s.diskFull || s.diskProbeFailed || s.diskFreeBytes < 2*s.cfg.DiskReserve+diskHysteresis
	return near || s.coreNow%diskCheckTicks == 0
}

// checkDisk compares the free space with the reserve and tells the core and
// the applier when it crosses it (one log line per change, not per tick).
func (s *Shell) checkDisk() {
	if s.cfg.DiskFree == nil {
		return
	}
	free, err := s.cfg.DiskFree()
	if err != nil {
		if !s.diskProbeFailed {
			s.logger.Warn("cannot read the free disk space; not guarding it", "err", err)
			s.diskProbeFailed = true
		}
		return
	}
	s.diskProbeFailed = false
	s.diskFreeBytes = free
	full := free < s.cfg.DiskReserve || (s.diskFull && free < s.cfg.DiskReserve+diskHysteresis)
	if full == s.diskFull {
		return
	}
	s.diskFull = full
	if full {
		s.logger.Warn("disk nearly full: not taking writes until there is room", "free_mib", free>>20,
			"reserve_mib", s.cfg.DiskReserve>>20)
	} else {
		s.logger.Info("disk has room again: taking writes", "free_mib", free>>20, "reserve_mib", s.cfg.DiskReserve>>20)
	}
	if s.node != nil {
		s.node.SetDiskFull(full)
	}
}

// diskText describes a full disk for status and client errors, "" if the
// disk has room.
func (s *Shell) diskText() string {
	switch {
	case s.noSpaceWait > 0:
		return fmt.Sprintf("disk full on replica %s: a write failed (no space left on device); retrying in %v",
			s.cfg.Node.ID, s.noSpaceWait)
	case !s.diskFull:
		return ""
	}
	return fmt.Sprintf("disk nearly full on replica %s: %d MiB free, reserve %d MiB; not taking writes",
		s.cfg.Node.ID, s.diskFreeBytes>>20, s.cfg.DiskReserve>>20)
}

// outOfSpace handles a write of a Ready that failed for want of space: the
// core believes the Ready was done, so it is dropped; the loop waits until
// there is room (answering proposals with a definite error: nothing is
// taken meanwhile, and dropping peer messages: the protocol resends them),
// then restarts the core from the log, as a restart would. It waits at
// least noSpaceRetry, doubling up to noSpaceRetryMax while writes keep
// failing though the guard sees room (a quota, another filesystem). It
// returns only once the new core runs, or with ctx's end.
func (s *Shell) outOfSpace(ctx context.Context, cause error, lastTick *time.Time) error {
	s.noSpaceWait = min(max(2*s.noSpaceWait, noSpaceRetry), noSpaceRetryMax)
	s.logger.Warn("a write failed for want of disk space: not taking writes; the replication core restarts from the log once there is room",
		"err", cause, "retry_in", s.noSpaceWait)
	s.ap.failAll(fmt.Errorf("%w: the replica's disk filled up before its commit", ErrOutcomeUnknown))
	s.ap.setSpacePaused(true)
	st := s.node.Status()
	st.Role, st.Primary = replica.RoleBackup, replica.None
	s.node = nil
	s.publish(st)
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	since := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-ticker.C:
			*lastTick = now
			s.checkDisk()
			if s.diskFull || now.Sub(since) < s.noSpaceWait {
				continue
			}
			node, err := replica.NewNode(s.cfg.Node, s.log)
			if err != nil {
				return fmt.Errorf("restart the replication core after the disk filled: %w", err)
			}
			s.logger.Info("restarted the replication core from the log after the disk filled", "log_end", s.log.Last())
			s.node = node
			s.coreNow = 1
			s.ticks.init(tickMemory)
			s.ticks.put(s.coreNow, now)
			s.ap.setSpacePaused(false)
			return nil
		case <-s.tr.Inbox():
			// Dropped: the core that would step it is gone for now.
		case p := <-s.propc:
			p.done <- proposalResult{err: fmt.Errorf("%w: %s", replica.ErrDiskFull, s.diskText())}
		case reply := <-s.forcec:
			reply <- fmt.Errorf("%w: %s", replica.ErrDiskFull, s.diskText())
		case <-s.ap.failed:
			return s.ap.err
		}
	}
}
