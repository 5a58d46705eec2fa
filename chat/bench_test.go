package chat_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// benchUsers is the number of recipients the send benchmarks spread over,
// so that no unread queue fills up.
const benchUsers = 200

// sendLog produces an endless log: benchUsers registers, then sends.
type sendLog struct {
	tb   testing.TB
	next eventlog.Offset
	id   uint64
}

func (l *sendLog) records(n int) []eventlog.Record {
	recs := make([]eventlog.Record, 0, n)
	for range n {
		l.next++
		var ev chat.Event
		if l.next <= benchUsers {
			ev = &chat.RegisterEvent{Name: fmt.Sprintf("user%d", l.next), PasswordHash: "$argon2id$x"}
		} else {
			l.id++
			ev = &chat.SendEvent{MessageID: l.id, FromUID: 1 + l.id%benchUsers, ToUID: 1 + (l.id*7)%benchUsers,
				Body: "a typical chat message of about sixty bytes, give or take"}
		}
		typ, data, err := chat.EncodeEvent(ev)
		require.NoError(l.tb, err)
		recs = append(recs, eventlog.Record{Offset: l.next, Epoch: 1, Type: typ, ClientID: fmt.Sprintf("client%d", l.next%50),
			Seq: uint64(l.next), Time: int64(l.next) * 1e6, Data: data})
	}
	return recs
}

// BenchmarkApplySend_Memory measures Apply of send events on MemStore.
func BenchmarkApplySend_Memory(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchApplySend(b, chat.NewMemStore(), batch)
		})
	}
}

// benchApplySend applies batches of send events to store and reports
// events per second. chatdb's benchmark reuses it.
func benchApplySend(b *testing.B, store chat.Store, batch int) {
	st := chat.NewState(store)
	log := &sendLog{tb: b}
	require.NoError(b, st.Apply(log.records(benchUsers)))
	events := 0
	for b.Loop() {
		b.StopTimer()
		recs := log.records(batch)
		b.StartTimer()
		if err := st.Apply(recs); err != nil {
			b.Fatal(err)
		}
		events += batch
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkDecide(b *testing.B) {
	h := newHarness(b, chat.NewMemStore())
	ann := h.register("ann")
	h.register("bob")
	b.Run("send", func(b *testing.B) {
		for b.Loop() {
			if _, err := chat.Decide(h.st, h.env, chat.Send{FromUID: ann, To: "bob", Body: "hello"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("register/production-argon", func(b *testing.B) {
		env := h.env
		env.Argon = chat.DefaultArgonParams()
		for b.Loop() {
			if _, err := chat.Decide(h.st, env, chat.Register{Name: "cy", Password: "correct horse"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
