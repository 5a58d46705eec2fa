package replica_test

import (
	crand "crypto/rand"
	"strconv"
	"testing"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// pump is a zero-delay, in-memory cluster for benchmarks: every Ready is
// persisted to a MemoryLog and its messages delivered at once.
type pump struct {
	nodes  []*replica.Node
	logs   []*eventlog.MemoryLog
	commit []eventlog.Offset
}

func newPump(tb testing.TB, size int) *pump {
	p := &pump{}
	var peers []replica.NodeID
	for i := range size {
		peers = append(peers, replica.NodeID(i))
	}
	for i := range size {
		l := eventlog.NewMemoryLog()
		if _, _, err := replica.EnsureIdentity(l, replica.NodeID(i), crand.Reader); err != nil {
			tb.Fatal(err)
		}
		n, err := replica.NewNode(replica.Config{ID: replica.NodeID(i), Peers: peers, HeartbeatTicks: 2,
			FailoverTicks: 20, MaxInflight: 8, MaxBatchBytes: 64 << 10, MaxUncommitted: 1 << 20}, l)
		if err != nil {
			tb.Fatal(err)
		}
		p.nodes, p.logs = append(p.nodes, n), append(p.logs, l)
		p.commit = append(p.commit, 0)
	}
	return p
}

func (p *pump) run(tb testing.TB) {
	for busy := true; busy; {
		busy = false
		for i, n := range p.nodes {
			rd, ok := n.Ready()
			if !ok {
				continue
			}
			busy = true
			for _, m := range rd.EarlyMessages {
				if err := p.nodes[m.To].Step(m); err != nil {
					tb.Fatal(err)
				}
			}
			if err := replica.Persist(p.logs[i], rd); err != nil {
				tb.Fatal(err)
			}
			p.commit[i] = rd.Commit
			n.Advance(rd)
			for _, m := range rd.Messages {
				if err := p.nodes[m.To].Step(m); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
}

func (p *pump) primary() int {
	for i, n := range p.nodes {
		if n.Status().Role == replica.RolePrimary {
			return i
		}
	}
	return -1
}

// BenchmarkCore_Replicate measures the protocol core's own cost of
// replicating and committing records on 3 replicas (MemoryLogs, messages
// delivered at once): the ceiling the core puts on throughput.
func BenchmarkCore_Replicate(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run("batch"+strconv.Itoa(batch), func(b *testing.B) {
			p := newPump(b, 3)
			for p.primary() < 0 {
				for _, n := range p.nodes {
					n.Tick()
				}
				p.run(b)
			}
			prim := p.primary()
			recs := make([]eventlog.Record, batch)
			for i := range recs {
				recs[i] = eventlog.Record{Type: "chat.send", ClientID: "c", Data: make([]byte, 100)}
			}
			records := 0
			for b.Loop() {
				last, err := p.nodes[prim].Propose(recs)
				if err != nil {
					b.Fatal(err)
				}
				for p.commit[prim] < last {
					p.run(b)
					p.nodes[prim].Tick() // heartbeats carry the commit when nothing else does
				}
				records += batch
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// benchAppend is a catch-up-sized MsgAppend: 256 records of 100 bytes.
func benchAppend() replica.Message {
	recs := make([]eventlog.Record, 256)
	for i := range recs {
		recs[i] = eventlog.Record{Offset: eventlog.Offset(100_000 + i), Epoch: 3, Type: "chat.send",
			ClientID: "client-" + strconv.Itoa(i%16), Seq: uint64(1000 + i), Time: 1_700_000_000_000_000_000 + int64(i),
			Data: make([]byte, 100)}
	}
	return replica.Message{Type: replica.MsgAppend, From: 0, To: 1, Epoch: 3, Role: replica.RolePrimary,
		LastOffset: 100_255, LastEpoch: 3, Commit: 100_000, Prev: 99_999, PrevEpoch: 3, Records: recs, Incarnation: 2}
}

// BenchmarkEncodeMessage and BenchmarkDecodeMessage measure the peer codec
// on the message that dominates catch-up; records/s is the ceiling the codec
// puts on catch-up speed (target: well above 200k/s).
func BenchmarkEncodeMessage(b *testing.B) {
	m := benchAppend()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := replica.EncodeMessage(m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(m.Records))/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeMessage(b *testing.B) {
	m := benchAppend()
	enc, err := replica.EncodeMessage(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := replica.DecodeMessage(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(m.Records))/b.Elapsed().Seconds(), "records/s")
}
