package transport

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkTransport measures one-way throughput between two transports
// over loopback: msgs/s and MB/s, including the kernel, framing, the
// coalescing writer and delivery into the Inbox.
func BenchmarkTransport(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("msg=%dKiB", size>>10), func(b *testing.B) { benchmarkTransport(b, size) })
	}
}

func benchmarkTransport(b *testing.B, size int) {
	lns, peers := listen(b, 2)
	a := startNode(b, testConfig(0, peers), lns[0])
	dst := startNode(b, testConfig(1, peers), lns[1])
	require.True(b, a.tr.Send(1, []byte("warm up")))
	recv(b, dst.tr)

	// An empty message marks the end: order per peer means everything
	// before it has arrived when it does.
	done := make(chan int)
	go func() {
		n := 0
		for in := range dst.tr.Inbox() {
			if len(in.Msg) == 0 {
				done <- n
				return
			}
			n++
		}
	}()
	msg := make([]byte, size)
	sent := 0
	b.SetBytes(int64(size))
	start := time.Now()
	for b.Loop() {
		for !a.tr.Send(1, msg) {
			runtime.Gosched() // queue full: let the writer drain it
		}
		sent++
	}
	for !a.tr.Send(1, []byte{}) {
		runtime.Gosched()
	}
	var got int
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		b.Fatal("messages did not arrive")
	}
	elapsed := time.Since(start).Seconds()
	require.Equal(b, sent, got, "no message lost on a healthy connection")
	b.ReportMetric(float64(got)/elapsed, "msgs/s")
	b.ReportMetric(float64(got)*float64(size)/elapsed/1e6, "MB/s-delivered")
}
