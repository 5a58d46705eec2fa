package chatdb_test

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

// BenchmarkApplySend measures State.Apply of send events on Badger (default
// options: no fsync per commit, the event log is what is synced), spread
// over 200 recipients so that no unread queue fills up.
func BenchmarkApplySend(b *testing.B) {
	const users = 200
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st := chat.NewState(chatdb.New(openBadger(b, badger.DefaultOptions(b.TempDir()))))
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
