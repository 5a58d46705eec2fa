package server

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/shell"
)

// BenchmarkServer_Send measures the server's cost of one send on a
// one-replica shell over an in-memory log and state: request decoding, the
// dedup check, Decide, Propose, apply, and the response, one request at a
// time. Allocations are the server's and the shell's together.
func BenchmarkServer_Send(b *testing.B) {
	ts := startServer(b, nil)
	alice := ts.user(b, "alice")
	// Enough recipients that no unread queue fills up (chat.MaxUnread).
	var reqs []wire.SendRequest
	for i := range 32 {
		name := fmt.Sprint("bob", i)
		ts.user(b, name)
		reqs = append(reqs, wire.SendRequest{To: name, Body: "hello there, a benchmark message"})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if werr := alice.call(wire.OpSend, reqs[i%len(reqs)], nil); werr != nil {
			b.Fatal(werr)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
}

// snapshotMessages is the size of the state BenchmarkSnapshot builds. The
// README's figures use 1000000 (building that state takes about a minute):
//
//	go test -run '^$' -bench Snapshot -benchtime 1x ./chat/server/ -args -snapshot-messages=1000000
var snapshotMessages = flag.Int("snapshot-messages", 20000, "messages in the chat state BenchmarkSnapshot builds")

// snapshotShare paces the snapshots written while applying as the shell
// paces its own (shell.Pace; 1: unpaced).
var snapshotShare = flag.Float64("snapshot-share", shell.DefaultSnapshotShare, "share of a core a snapshot written while applying may take")

// BenchmarkSnapshot measures, on a Badger state (chatdb) holding
// -snapshot-messages messages (each with its history and queue entries,
// among 1000 users, from 1000 clients whose dedup tables are full):
// writing a snapshot and its size, restoring it into an empty state (the
// install on a backup), purging the state's database (badgerdb.Purge: what
// deletes cost), and applying sends alone and while a snapshot is written
// (the primary's throughput during a snapshot).
func BenchmarkSnapshot(b *testing.B) {
	n := *snapshotMessages
	dir := b.TempDir()
	db, err := chatdb.Open(filepath.Join(dir, "state"), chatdb.Options{})
	require.NoError(b, err)
	defer db.Close()
	sm := NewStateMachine(chat.NewState(db.Store()))
	// The log of the same records, for its size on disk.
	log, err := eventlog.OpenBadger(filepath.Join(dir, "log"), eventlog.BadgerOptions{})
	require.NoError(b, err)
	gen := &sendGen{rng: rand.New(rand.NewPCG(1, 2))}
	start := time.Now()
	for done := 0; done < n+snapshotUsers; {
		recs := gen.next(min(256, n+snapshotUsers-done))
		require.NoError(b, log.Append(recs))
		require.NoError(b, sm.Apply(recs))
		done += len(recs)
	}
	require.NoError(b, log.Close())
	b.Logf("built a state of %d messages in %v: state %d MiB of tables (%d bytes per message), log %d MiB on disk (%d bytes per event)",
		n, time.Since(start).Round(time.Second), dirSize(b, filepath.Join(dir, "state"), ".sst")>>20,
		dirSize(b, filepath.Join(dir, "state"), ".sst")/int64(n),
		dirSize(b, filepath.Join(dir, "log"), "")>>20, dirSize(b, filepath.Join(dir, "log"), "")/int64(n+snapshotUsers))
	snapPath := filepath.Join(dir, "snapshot")
	writeSnapshot := func(b *testing.B) int64 {
		f, err := os.Create(snapPath)
		require.NoError(b, err)
		w := bufio.NewWriterSize(f, 1<<20)
		off, err := sm.WriteSnapshot(w)
		require.NoError(b, err)
		require.NoError(b, w.Flush())
		require.NoError(b, f.Sync())
		fi, err := f.Stat()
		require.NoError(b, err)
		require.NoError(b, f.Close())
		require.Equal(b, sm.state.Applied(), off)
		return fi.Size()
	}
	writeSnapshot(b) // for restore, run alone or not

	b.Run("write", func(b *testing.B) {
		var size int64
		for b.Loop() {
			size = writeSnapshot(b)
		}
		b.ReportMetric(float64(size), "snapshot-bytes")
		b.ReportMetric(float64(size)/float64(n), "bytes/message")
	})
	// As the shell writes it: paced to -snapshot-share of a core.
	b.Run("write-paced", func(b *testing.B) {
		for b.Loop() {
			_, err := sm.WriteSnapshot(shell.Pace(b.Context(), io.Discard, *snapshotShare))
			require.NoError(b, err)
		}
	})
	b.Run("restore", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			dst, err := chatdb.Open(filepath.Join(dir, fmt.Sprint("restored", i)), chatdb.Options{})
			require.NoError(b, err)
			f, err := os.Open(snapPath)
			require.NoError(b, err)
			off, err := NewStateMachine(chat.NewState(dst.Store())).RestoreSnapshot(bufio.NewReaderSize(f, 1<<20))
			require.NoError(b, err)
			require.Equal(b, sm.state.Applied(), off)
			require.NoError(b, f.Close())
			require.NoError(b, dst.Close())
		}
	})
	b.Run("purge", func(b *testing.B) {
		for b.Loop() {
			require.NoError(b, db.Purge(b.Context()))
		}
	})
	// phase applies phaseSends sends and returns how long that took.
	phase := func(b *testing.B) time.Duration {
		t0 := time.Now()
		for range phaseSends / 256 {
			require.NoError(b, sm.Apply(gen.next(256)))
		}
		return time.Since(t0)
	}
	b.Run("apply", func(b *testing.B) {
		var took time.Duration
		for b.Loop() {
			took += phase(b)
		}
		b.ReportMetric(float64(b.N*phaseSends)/took.Seconds(), "sends/s")
	})
	// What a snapshot costs the applier. Every send grows the state and
	// Badger's compaction debt, so the rate falls along the run: phases
	// measured one after the other (all alone, then all during snapshots)
	// would charge that fall to the snapshot (it was -27 to -43% that way,
	// and as much with no snapshot at all). So each iteration is four
	// phases in the order alone, during, during, alone, which cancels a
	// trend that is linear over the iteration; the snapshot writer runs
	// back to back through the two middle phases and is cut off (by its
	// pacer's context) at their end.
	b.Run("apply-during-snapshot", func(b *testing.B) {
		var alone, during time.Duration
		snaps := 0
		for b.Loop() {
			alone += phase(b)
			ctx, cancel := context.WithCancel(b.Context())
			var wg sync.WaitGroup
			wg.Go(func() {
				for ctx.Err() == nil {
					if _, err := sm.WriteSnapshot(shell.Pace(ctx, io.Discard, *snapshotShare)); err != nil {
						if ctx.Err() == nil {
							b.Error(err)
						}
						return
					}
					snaps++
				}
			})
			during += phase(b) + phase(b)
			cancel()
			wg.Wait()
			alone += phase(b)
		}
		a := float64(2*b.N*phaseSends) / alone.Seconds()
		d := float64(2*b.N*phaseSends) / during.Seconds()
		b.ReportMetric(a, "sends/s-alone")
		b.ReportMetric(d, "sends/s-during")
		b.ReportMetric(100*(a-d)/a, "%drop")
		b.ReportMetric(float64(snaps), "snapshots-done")
	})
}

// phaseSends is the size of one measuring phase of BenchmarkSnapshot's
// apply benchmarks: about a second of applying.
const phaseSends = 40 * 256

// snapshotUsers is the number of accounts (and clients) of the
// benchmark's state.
const snapshotUsers = 1000

// sendGen makes the benchmark's records: the registrations, then sends of
// random 64-byte bodies among the users.
type sendGen struct {
	rng *rand.Rand
	off eventlog.Offset
}

func (g *sendGen) next(n int) []eventlog.Record {
	recs := make([]eventlog.Record, 0, n)
	for range n {
		g.off++
		var ev chat.Event
		client := fmt.Sprint("client", uint64(g.off)%snapshotUsers)
		if g.off <= snapshotUsers {
			client = fmt.Sprint("reg", g.off)
			ev = &chat.RegisterEvent{Name: fmt.Sprint("user", g.off), PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"}
		} else {
			body := make([]byte, 64)
			for i := range body {
				body[i] = byte(33 + g.rng.IntN(94))
			}
			from := 1 + g.rng.Uint64N(snapshotUsers)
			ev = &chat.SendEvent{MessageID: chat.MessageID(client, uint64(g.off)), FromUID: from,
				ToUID: 1 + (from+1+g.rng.Uint64N(snapshotUsers-1))%snapshotUsers, Body: string(body)}
		}
		typ, data, err := chat.EncodeEvent(ev)
		if err != nil {
			panic(err)
		}
		recs = append(recs, eventlog.Record{Offset: g.off, Epoch: 1, Type: typ, ClientID: client, Seq: uint64(g.off),
			Time: int64(g.off) * 1e6, Data: data})
	}
	return recs
}

// dirSize is the disk space the files in dir whose names end in suffix
// take (allocated blocks: Badger's logs are sparse preallocated files).
func dirSize(tb testing.TB, dir, suffix string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, suffix) {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			if os.IsNotExist(err) {
				return nil // retired by Badger since the listing
			}
			return err
		}
		n += st.Blocks * 512
		return nil
	})
	require.NoError(tb, err)
	return n
}
