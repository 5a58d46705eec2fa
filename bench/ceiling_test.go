package bench

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkLoopbackRoundTrip is the ceiling of any request/response service
// on this machine: 16 concurrent clients, each waiting for the answer to its
// 100-byte request before sending the next, against a server that does
// nothing but echo, all in one process over loopback TCP. A chat send costs
// at least this (one client round trip) plus, with three replicas, two more
// round trips between the primary and the backups, three fsyncs and the
// state writes. Compare its roundtrips/s with the sends/s chatbench reports
// and the fsync rate it measures (docs: README, Performance).
func BenchmarkLoopbackRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 100)
				w := bufio.NewWriter(c)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					w.Write(buf)
					if w.Flush() != nil {
						return
					}
				}
			})
		}
	})
	const clients = 16
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 100)
		for pb.Next() {
			if _, err := c.Write(buf); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
}
