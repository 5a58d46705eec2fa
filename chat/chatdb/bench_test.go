package chatdb_test

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

const (
	// benchUsers is the number of accounts the benchmarks' sends spread
	// over, so that no unread queue fills up.
	benchUsers = 200
	// benchClients is the number of client ids the requests come from.
	benchClients = 50
	// benchChunk is how many records are made at once, outside the timer:
	// stopping the timer reads the memory statistics, which stops the world,
	// and doing that for every batch of one would dominate the measure.
	benchChunk = 4096
)

// benchLog produces an endless log: benchUsers registers, then sends
// (each followed by the delivery of that message when deliver is set).
type benchLog struct {
	b       *testing.B
	deliver bool
	// anonymous leaves the records without a client id, so that Apply
	// keeps no dedup bookkeeping for them (BenchmarkApplySend_Dedup).
	anonymous bool
	off       eventlog.Offset
	lastMsg   *chat.SendEvent
	buf       []eventlog.Record
}

func (l *benchLog) add(ev chat.Event) {
	typ, data, err := chat.EncodeEvent(ev)
	if err != nil {
		l.b.Fatal(err)
	}
	l.off++
	client := fmt.Sprintf("client%d", l.off%benchClients)
	if l.anonymous {
		client = ""
	}
	l.buf = append(l.buf, eventlog.Record{Offset: l.off, Epoch: 1, Type: typ,
		ClientID: client, Seq: uint64(l.off), Time: int64(l.off) * 1e6, Data: data})
}

func (l *benchLog) fill(n int) {
	for len(l.buf) < n {
		switch {
		case l.off < benchUsers:
			l.add(&chat.RegisterEvent{Name: fmt.Sprintf("user%d", l.off+1), PasswordHash: "$argon2id$x"})
		case l.deliver && l.lastMsg != nil:
			l.add(&chat.DeliverEvent{UID: l.lastMsg.ToUID, MessageIDs: []uint64{l.lastMsg.MessageID}})
			l.lastMsg = nil
		default:
			id := uint64(l.off)
			ev := &chat.SendEvent{MessageID: id, FromUID: 1 + id%benchUsers, ToUID: 1 + (id*7)%benchUsers,
				Body: "a typical chat message of about sixty bytes, give or take"}
			l.add(ev)
			l.lastMsg = ev
		}
	}
}

// next returns the next n records, making more (timer stopped) when needed.
func (l *benchLog) next(n int) []eventlog.Record {
	if len(l.buf) < n {
		l.b.StopTimer()
		l.buf = append(make([]eventlog.Record, 0, max(n, benchChunk)), l.buf...)
		l.fill(max(n, benchChunk))
		l.b.StartTimer()
	}
	recs := l.buf[:n:n]
	l.buf = l.buf[n:]
	return recs
}

// benchApply applies the log in batches of batch records and reports
// events per second.
func benchApply(b *testing.B, store chat.Store, batch int, deliver bool) {
	benchApplyLog(b, store, batch, &benchLog{b: b, deliver: deliver})
}

func benchApplyLog(b *testing.B, store chat.Store, batch int, log *benchLog) {
	st := chat.NewState(store)
	log.fill(benchUsers)
	if err := st.Apply(log.next(benchUsers)); err != nil {
		b.Fatal(err)
	}
	events := 0
	for b.Loop() {
		if err := st.Apply(log.next(batch)); err != nil {
			b.Fatal(err)
		}
		events += batch
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// openStore opens the replica's state database (Open: no fsync per
// commit).
func openStore(b *testing.B) chat.Store {
	db, err := chatdb.Open(b.TempDir(), chatdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db.Store()
}

// BenchmarkApplySend measures State.Apply of send events on Badger, in
// batches of the sizes the replication shell applies (up to 256 records per
// transaction when catching up).
func BenchmarkApplySend(b *testing.B) {
	// "open" is the replica's state database; "syncwrites" is the old
	// layout's cost, the state sharing the log's database and so its
	// SyncWrites.
	stores := []struct {
		name string
		open func(b *testing.B) chat.Store
	}{
		{"open", openStore},
		{"syncwrites", func(b *testing.B) chat.Store {
			return chatdb.New(openBadger(b, badger.DefaultOptions(b.TempDir()).WithSyncWrites(true)))
		}},
	}
	for _, store := range stores {
		for _, batch := range []int{1, 64, 256, 4096} {
			b.Run(fmt.Sprintf("db=%s/batch=%d", store.name, batch), func(b *testing.B) {
				benchApply(b, store.open(b), batch, false)
			})
		}
	}
}

// BenchmarkApplySendDeliver is BenchmarkApplySend with every message
// delivered by the next record, as when recipients are online: half the
// events are deliveries, which read and rewrite a message.
func BenchmarkApplySendDeliver(b *testing.B) {
	for _, batch := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchApply(b, openStore(b), batch, true)
		})
	}
}

// BenchmarkDecideSend measures Decide of a send on Badger, after 20k
// applied sends between the benchmark's users, as the primary decides each
// client request before proposing it.
func BenchmarkDecideSend(b *testing.B) {
	st := chat.NewState(openStore(b))
	log := &benchLog{b: b}
	log.fill(benchUsers + 20_000)
	if err := st.Apply(log.next(benchUsers + 20_000)); err != nil {
		b.Fatal(err)
	}
	var id uint64
	env := chat.Env{NewMessageID: func() uint64 { id++; return id }}
	i := 0
	for b.Loop() {
		i++
		cmd := chat.Send{FromUID: uint64(1 + i%benchUsers), To: fmt.Sprintf("user%d", 1+(i*7)%benchUsers), Body: "hello"}
		if _, err := chat.Decide(st, env, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplySend_Dedup measures what the dedup bookkeeping costs Apply:
// the same sends with client ids (each request's result stored, its client
// record rewritten, old results evicted) and without (none of it; only
// records written before client ids existed are like that).
func BenchmarkApplySend_Dedup(b *testing.B) {
	for _, dedup := range []bool{true, false} {
		b.Run(fmt.Sprintf("dedup=%v", dedup), func(b *testing.B) {
			benchApplyLog(b, openStore(b), 64, &benchLog{b: b, anonymous: !dedup})
		})
	}
}
