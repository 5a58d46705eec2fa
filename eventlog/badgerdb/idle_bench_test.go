package badgerdb_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/eventlog/badgerdb"
)

// BenchmarkIdleCPU measures the CPU an idle process spends with no
// database, and with the two a replica keeps (the log's, synced, and the
// state's), open and untouched: Badger's compactors wake every 50 ms, two
// per database at least, whatever the load. It is the floor under an idle
// replica's CPU (issue 10's target: 1% of a core). Run it alone:
//
//	go test ./eventlog/badgerdb -run '^$' -bench IdleCPU -benchtime 1x
func BenchmarkIdleCPU(b *testing.B) {
	const idle = 10 * time.Second
	for _, dbs := range []int{0, 2} {
		b.Run(fmt.Sprintf("databases=%d", dbs), func(b *testing.B) {
			for i := range dbs {
				db, err := badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: b.TempDir(), SyncWrites: i == 0}))
				if err != nil {
					b.Fatal(err)
				}
				// Written once, as a replica's are, then left alone.
				if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = db.Close() })
			}
			var pct float64
			for b.Loop() {
				before := cpuTime(b)
				time.Sleep(idle)
				pct = 100 * float64(cpuTime(b)-before) / float64(idle)
			}
			b.ReportMetric(pct, "%core")
		})
	}
}

// cpuTime is the process's user and system CPU so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
