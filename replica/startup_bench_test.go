package replica_test

import (
	crand "crypto/rand"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// BenchmarkNewNode_1M builds, once, a Badger log of 1M events whose only ISR
// record is its second record (a cluster that never changed membership), then
// measures NewNode on it: start-up must not depend on the log's length (target
// well under 1 s). "index" is the normal start (the ISR index names the
// record); "scan" corrupts the index so that NewNode falls back to scanning
// the log back, as it did before the index existed: the figure it replaces
// (about 30 s here, so one iteration). Building the log takes about 30 s.
// The rest of a shell's start (reading the state machine's applied offset)
// does not read the log.
func BenchmarkNewNode_1M(b *testing.B) {
	const total, batch = 1_000_000, 5_000
	l, err := eventlog.OpenBadger(b.TempDir(), eventlog.BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := replica.EnsureIdentity(l, 1, crand.Reader); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	}()
	isr := replica.ISRChange{Members: []replica.ISRMember{{ID: 0, Incarnation: 1}, {ID: 1, Incarnation: 1}, {ID: 2, Incarnation: 1}},
		Chained: true}
	isrData, err := msgpack.Marshal(&isr)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]eventlog.Record, batch)
	for next := eventlog.Offset(1); next <= total; next += batch {
		for i := range recs {
			off := next + eventlog.Offset(i)
			recs[i] = eventlog.Record{Offset: off, Epoch: 1, Type: "chat.send", ClientID: "c", Seq: uint64(off), Time: 1, Data: make([]byte, 100)}
			switch off {
			case 1:
				recs[i] = eventlog.Record{Offset: 1, Epoch: 1, Type: replica.TypeEpochStart, Data: []byte{0x80}}
			case 2:
				recs[i] = eventlog.Record{Offset: 2, Epoch: 1, Type: replica.TypeISR, Data: isrData}
			}
		}
		if err := l.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	setMeta := func(name string, v []byte, err error) {
		b.Helper()
		if err == nil {
			err = l.SetMeta(name, v)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := l.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}); err != nil {
		b.Fatal(err)
	}
	hs, err := replica.EncodeHardState(replica.HardState{Epoch: 1, Vote: 0, Incarnation: 1})
	setMeta(replica.HardStateKey, hs, err)
	index, err := replica.EncodeISRIndex(replica.ISRIndex{At: 2, Epoch: 1, Chained: true})
	setMeta(replica.ISRIndexKey, index, err)

	for _, tc := range []struct {
		name  string
		index []byte
	}{
		{"index", index},
		{"scan", []byte{0xc1}}, // msgpack's never-used byte: undecodable
	} {
		b.Run(tc.name, func(b *testing.B) {
			setMeta(replica.ISRIndexKey, tc.index, nil)
			var took time.Duration
			for b.Loop() {
				start := time.Now()
				n, err := replica.NewNode(replica.Config{ID: 1, Peers: []replica.NodeID{0, 1, 2}}, l)
				took += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if st := n.Status(); st.LogEnd != total || len(st.ISR) != 3 || !st.Recovering {
					b.Fatalf("started at %d with isr %v (recovering %v), want %d, [0 1 2], true", st.LogEnd, st.ISR, st.Recovering, total)
				}
			}
			b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "start-ms")
		})
	}
}
