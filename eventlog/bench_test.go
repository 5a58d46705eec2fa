package eventlog_test

// Speed targets as benchmarks: group commit on Badger (events/s, syncs per
// event) against the raw fsync cost of the same disk, record codec speed, and
// the open time of a log holding 1M events (target < 1 s, independent of the
// log's length).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

func BenchmarkGroupCommitter_Badger(b *testing.B) {
	for _, appenders := range []int{1, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			l, err := eventlog.OpenBadger(b.TempDir(), eventlog.BadgerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			g := eventlog.NewGroupCommitter(l, eventlog.GroupOptions{})
			ctx, cancel := context.WithCancel(context.Background())
			var run sync.WaitGroup
			run.Go(func() { _ = g.Run(ctx) })
			defer func() { cancel(); run.Wait() }()

			// Persistent appenders take one token per append: at most
			// `appenders` appends are in flight, as with that many clients.
			tokens := make(chan struct{})
			var workers sync.WaitGroup
			for range appenders {
				workers.Go(func() {
					for range tokens {
						recs := []eventlog.Record{{Epoch: 1, Type: "chat.send", ClientID: "bench", Data: make([]byte, 200)}}
						if _, err := g.Append(ctx, recs); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			before := g.Stats()
			for b.Loop() {
				tokens <- struct{}{}
			}
			close(tokens)
			workers.Wait()
			after := g.Stats()
			events := float64(after.Appends - before.Appends)
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(after.Syncs-before.Syncs)/events, "syncs/event")
		})
	}
}

// BenchmarkFsync is the floor under any durable append on this disk: write a
// small record to a file and fsync it.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256)
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "syncs/s")
}

func benchRecord() eventlog.Record {
	return eventlog.Record{Offset: 123456, Epoch: 3, Type: "chat.send", ClientID: "client-42", Seq: 99, Time: time.Now().UnixNano(), Data: make([]byte, 200)}
}

func BenchmarkEncodeRecord(b *testing.B) {
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eventlog.EncodeRecord(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	r := benchRecord()
	enc, err := eventlog.EncodeRecord(r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eventlog.DecodeRecord(r.Offset, enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenBadger_1M builds a log of 1M events once (a few seconds), then
// measures opening it: open-ms excludes Close, heap-MiB is the live Go heap
// right after an open.
func BenchmarkOpenBadger_1M(b *testing.B) {
	const total, batch = 1_000_000, 5_000
	dir := b.TempDir()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]eventlog.Record, batch)
	for next := eventlog.Offset(1); next <= total; next += batch {
		for i := range recs {
			recs[i] = eventlog.Record{Offset: next + eventlog.Offset(i), Epoch: 1, Type: "chat.send", ClientID: "c", Seq: uint64(next) + uint64(i), Time: 1, Data: make([]byte, 100)}
		}
		if err := l.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}

	var opening time.Duration
	var heap uint64
	for b.Loop() {
		start := time.Now()
		l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
		opening += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if l.Last() != total {
			b.Fatalf("last %d, want %d", l.Last(), total)
		}
		runtime.GC() // count what the open log holds, not garbage
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = max(heap, ms.HeapAlloc)
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(opening.Milliseconds())/float64(b.N), "open-ms")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
}

// BenchmarkBadgerLog_Read reads 8 records of 200 bytes, as a running
// replica's applier and replication sender do: at the log's end (served by
// the tail cache) and far behind it (from Badger).
func BenchmarkBadgerLog_Read(b *testing.B) {
	const total, batch = 10_000, 100
	l, err := eventlog.OpenBadger(b.TempDir(), eventlog.BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	enc, err := eventlog.EncodeRecord(benchRecord())
	if err != nil {
		b.Fatal(err)
	}
	maxBytes := 7*len(enc) + 1 // stops after the 8th record
	recs := make([]eventlog.Record, batch)
	for next := eventlog.Offset(1); next <= total; next += batch {
		for i := range recs {
			recs[i] = benchRecord()
			recs[i].Offset = next + eventlog.Offset(i)
		}
		if err := l.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		from eventlog.Offset
	}{{"tail", total - 7}, {"behind", 100}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := l.Read(bc.from, maxBytes)
				if err != nil || len(got) != 8 {
					b.Fatalf("read %d records: %v", len(got), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*8), "ns/record")
		})
	}
}

// BenchmarkCompact_Stall measures what a compaction of 100k records costs
// the appends going on beside it, as the shell's loop compacts after a
// snapshot (RetainEvents records at a time): the Compact call itself, and
// the slowest of the small appends made from its start until 500 more
// have gone. The appends run in the compacting goroutine's place, one
// after the other, as the shell's loop does.
func BenchmarkCompact_Stall(b *testing.B) {
	const n, batch = 110_000, 500
	b.StopTimer()
	for range b.N {
		l, err := eventlog.OpenBadger(b.TempDir(), eventlog.BadgerOptions{})
		require.NoError(b, err)
		for from := 1; from <= n; from += batch {
			require.NoError(b, l.Append(testRecords(eventlog.Offset(from), batch, 1, 150)))
		}
		b.StartTimer()
		start := time.Now()
		require.NoError(b, l.Compact(100_000))
		compact := time.Since(start)
		var worst time.Duration
		for i := range 500 {
			t0 := time.Now()
			require.NoError(b, l.Append(testRecords(eventlog.Offset(n+1+i), 1, 1, 150)))
			worst = max(worst, time.Since(t0))
		}
		b.StopTimer()
		b.ReportMetric(float64(compact.Microseconds())/1000, "compact-ms")
		b.ReportMetric(float64(worst.Microseconds())/1000, "worst-append-ms")
		require.NoError(b, l.Close())
	}
}
