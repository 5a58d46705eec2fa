package chatdb_test

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

// BenchmarkApplySend measures State.Apply of send events on Badger, spread
// over 200 recipients so that no unread queue fills up.
func BenchmarkApplySend(b *testing.B) {
	const users = 200
	// "open" is the replica's state database (Open: no fsync per commit);
	// "syncwrites" is the old layout's cost, the state sharing the log's
	// database and so its SyncWrites.
	stores := []struct {
		name string
		open func(b *testing.B) chat.Store
	}{
		{"open", func(b *testing.B) chat.Store {
			db, err := chatdb.Open(b.TempDir(), chatdb.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db.Store()
		}},
		{"syncwrites", func(b *testing.B) chat.Store {
			return chatdb.New(openBadger(b, badger.DefaultOptions(b.TempDir()).WithSyncWrites(true)))
		}},
	}
	for _, store := range stores {
		for _, batch := range []int{1, 64, 256, 4096} {
			b.Run(fmt.Sprintf("db=%s/batch=%d", store.name, batch), func(b *testing.B) {
				st := chat.NewState(store.open(b))
				var off eventlog.Offset
				next := func(n int) []eventlog.Record {
					recs := make([]eventlog.Record, 0, n)
					for range n {
						off++
						var ev chat.Event = &chat.SendEvent{MessageID: uint64(off), FromUID: 1 + uint64(off)%users,
							ToUID: 1 + uint64(off*7)%users, Body: "a typical chat message of about sixty bytes, give or take"}
						if off <= users {
							ev = &chat.RegisterEvent{Name: fmt.Sprintf("user%d", off), PasswordHash: "$argon2id$x"}
						}
						typ, data, err := chat.EncodeEvent(ev)
						if err != nil {
							b.Fatal(err)
						}
						recs = append(recs, eventlog.Record{Offset: off, Epoch: 1, Type: typ,
							ClientID: fmt.Sprintf("client%d", off%50), Seq: uint64(off), Time: int64(off) * 1e6, Data: data})
					}
					return recs
				}
				if err := st.Apply(next(users)); err != nil {
					b.Fatal(err)
				}
				events := 0
				for b.Loop() {
					b.StopTimer()
					recs := next(batch)
					b.StartTimer()
					if err := st.Apply(recs); err != nil {
						b.Fatal(err)
					}
					events += batch
				}
				b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
