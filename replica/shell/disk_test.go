package shell

// A full disk is an expected condition (disk.go): these tests fill the disk
// of one replica of a three-replica cluster, through its free-space guard
// and through ENOSPC failpoints on each place that writes (the log's append,
// the state's apply), and check that nothing crashes, that clients get
// typed, definite answers, and that everything resumes with nothing lost
// once there is room.

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// testReserve is the guard's reserve in these tests.
const testReserve = 64 << 20

// A backup whose disk nearly fills stops taking records; the primary drops
// it from the ISR and goes on with the other. With room again, it catches up
// and rejoins, with every record.
func TestDisk_FullBackupLeavesTheISRAndRejoins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		b := (p + 1) % 3
		require.NoError(t, c.propose(p, "a", 1))
		c.nodes[b].free.Store(testReserve - 1)
		require.Eventually(t, func() bool { return len(c.nodes[p].shell.Status().ISR) == 2 }, 10*time.Second, 10*time.Millisecond,
			"the full backup leaves the ISR: %v", c.statuses())
		st := c.nodes[b].shell.Status()
		assert.Contains(t, st.DiskFull, fmt.Sprintf("disk nearly full on replica %d", b))
		assert.Contains(t, st.Waiting, "disk nearly full")
		want := []string{"a/1"}
		for seq := uint64(2); seq <= 5; seq++ {
			require.NoError(t, c.propose(p, "a", seq), "writes go on without it")
			want = append(want, fmt.Sprintf("a/%d", seq))
		}
		c.nodes[b].free.Store(testReserve + diskHysteresis)
		require.Eventually(t, func() bool { return len(c.nodes[p].shell.Status().ISR) == 3 }, 10*time.Second, 10*time.Millisecond,
			"back in the ISR: %v", c.statuses())
		for i := range 3 {
			c.waitApplied(i, want)
		}
		assert.Empty(t, c.nodes[b].shell.Status().DiskFull)
	})
}

// A primary whose disk nearly fills refuses writes with a definite error
// (nothing taken), hands its role to a backup that can still write, and
// rejoins once there is room.
func TestDisk_FullPrimaryRefusesWritesAndHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		require.NoError(t, c.propose(p, "a", 1))
		c.nodes[p].free.Store(testReserve - 1)
		// The guard reads the free space every few ticks while there was
		// plenty (disk.go): wait until it has seen the drop.
		require.Eventually(t, func() bool { return c.nodes[p].shell.Status().DiskFull != "" }, 5*time.Second, 10*time.Millisecond)
		err := c.propose(p, "a", 2)
		if !errors.Is(err, replica.ErrDiskFull) {
			var npe *replica.NotPrimaryError
			require.ErrorAs(t, err, &npe, "refused, and definitely: it handed over or says the disk is full")
		}
		p2 := c.primary()
		require.NotEqual(t, p, p2, "a backup that can write takes over")
		require.NoError(t, c.propose(p2, "a", 2))
		c.nodes[p].free.Store(1 << 40)
		for i := range 3 {
			c.waitApplied(i, []string{"a/1", "a/2"})
		}
	})
}

// diskFull is a failpoint: while set, every operation that checks it fails
// with ENOSPC, and it counts them.
type diskFull struct {
	mu    sync.Mutex
	full  bool
	fails int
}

func (d *diskFull) set(full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.full = full
}

// failed returns the failures counted so far.
func (d *diskFull) failed() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fails
}

// check returns op's ENOSPC error while the disk is full, nil otherwise.
func (d *diskFull) check(op string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.full {
		return nil
	}
	d.fails++
	return fmt.Errorf("%s: %w", op, syscall.ENOSPC)
}

// failingLog is a MemoryLog whose appends fail with ENOSPC while its disk
// is full: the failpoint of a log append that meets a full disk.
type failingLog struct {
	*eventlog.MemoryLog
	diskFull
}

func (l *failingLog) Append(recs []eventlog.Record) error {
	if err := l.check("append: write 000001.mem"); err != nil {
		return err
	}
	return l.MemoryLog.Append(recs)
}

// Write fails like Append for a batch that appends records.
func (l *failingLog) Write(b eventlog.Batch) error {
	if len(b.Records) > 0 {
		if err := l.check("write batch: write 000001.mem"); err != nil {
			return err
		}
	}
	return l.MemoryLog.Write(b)
}

// A log append that fails with ENOSPC (the guard did not see it coming)
// does not stop the replica: it waits for room, restarts its replication
// core from the log in the same process, and catches up; the clients of a
// primary hit that way get "outcome unknown" for what it had taken, and
// definite refusals meanwhile.
func TestDisk_LogAppendENOSPCRestartsTheCore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		require.NoError(t, c.propose(p, "a", 1))
		b := (p + 1) % 3
		c.stop(b)
		fl := &failingLog{MemoryLog: c.nodes[b].log}
		c.startOn(b, fl)
		c.waitApplied(b, []string{"a/1"})

		fl.set(true)
		require.NoError(t, c.propose(p, "a", 2), "the others commit without it once it is out of the ISR")
		time.Sleep(500 * time.Millisecond)
		fails := fl.failed()
		require.Positive(t, fails, "the failpoint fired")
		select {
		case err := <-c.nodes[b].done:
			t.Fatalf("the replica stopped on ENOSPC: %v", err)
		default:
		}
		assert.Contains(t, c.nodes[b].shell.Status().Waiting, "disk")
		fl.set(false)
		for i := range 3 {
			c.waitApplied(i, []string{"a/1", "a/2"})
		}
		require.NoError(t, c.propose(c.primary(), "a", 3))
		for i := range 3 {
			c.waitApplied(i, []string{"a/1", "a/2", "a/3"})
		}
	})
}

// failingSM is a listSM whose Apply fails with ENOSPC while its disk is
// full: the failpoint of a state transaction that meets a full disk.
type failingSM struct {
	listSM
	diskFull
}

func (m *failingSM) Apply(recs []eventlog.Record) error {
	if err := m.check("commit state transaction"); err != nil {
		return err
	}
	return m.listSM.Apply(recs)
}

// A state transaction that fails with ENOSPC changes nothing and is retried
// once there is room; the replica keeps replicating meanwhile.
func TestDisk_StateApplyENOSPCIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		b := (p + 1) % 3
		fsm := &failingSM{}
		fsm.set(true)
		c.stop(b)
		c.nodes[b].sm = fsm
		c.startOn(b, c.nodes[b].log)
		require.NoError(t, c.propose(p, "a", 1))
		time.Sleep(300 * time.Millisecond)
		require.Positive(t, fsm.failed(), "the failpoint fired")
		fsm.set(false)
		c.waitApplied(b, []string{"a/1"})
		select {
		case err := <-c.nodes[b].done:
			t.Fatalf("the replica stopped on ENOSPC: %v", err)
		default:
		}
	})
}

// When every replica's disk fills at once, one still leads, serving reads
// and refusing writes with a definite error, rather than all of them
// handing the role to each other and nobody leading.
func TestDisk_AllFullStillLeadsForReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		require.NoError(t, c.propose(p, "a", 1))
		for i := range 3 {
			c.nodes[i].free.Store(testReserve - 1)
		}
		time.Sleep(3 * time.Second)
		p2 := c.primary()
		require.ErrorIs(t, c.propose(p2, "a", 2), replica.ErrDiskFull)
		require.Eventually(t, func() bool { return c.nodes[p2].shell.ReadBarrier(t.Context()) == nil }, 5*time.Second, 10*time.Millisecond,
			"the full primary serves reads")
		for i := range 3 {
			c.nodes[i].free.Store(1 << 40)
		}
		require.Eventually(t, func() bool { return c.propose(c.primary(), "a", 2) == nil }, 10*time.Second, 50*time.Millisecond)
		for i := range 3 {
			c.waitApplied(i, []string{"a/1", "a/2"})
		}
	})
}
