package server

import (
	"fmt"
	"testing"

	"github.com/replichat/replichat/chat/wire"
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
