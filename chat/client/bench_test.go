package client_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/client/clienttest"
)

// benchClient is a client logged in as alice on a one-replica fake, where
// bob exists. The fake has no disk and no replication: these numbers are the
// client's own overhead (encoding, dispatch, loopback round trip).
func benchClient(b *testing.B) *client.Client {
	cl := clienttest.Start(b, 1)
	cl.AddUser("alice", "pw")
	cl.AddUser("bob", "pw")
	c, err := client.Dial(b.Context(), client.Config{Servers: cl.Addrs()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	_, err = c.Login(b.Context(), "alice", "pw")
	require.NoError(b, err)
	return c
}

// BenchmarkClient_Send measures one send at a time: the request latency.
func BenchmarkClient_Send(b *testing.B) {
	c := benchClient(b)
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := c.Send(b.Context(), "bob", "benchmark message"); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "sends/s")
}

// BenchmarkClient_SendPipelined measures sends from many goroutines on one
// client, pipelined on one connection.
func BenchmarkClient_SendPipelined(b *testing.B) {
	c := benchClient(b)
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(b.Context(), "bob", "benchmark message"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sends/s")
}
