package wire

// Benchmarks of the codec on the two shapes that dominate traffic: a send
// request (every message) and a response carrying a page of 100 messages
// (read, history). Each iteration encodes the body and the frame, then reads
// the frame back and decodes the body, as the two ends of a connection do.

import (
	"bufio"
	"bytes"
	"testing"
)

func BenchmarkSendRequest(b *testing.B) {
	benchRoundTrip(b, func() (Frame, error) {
		return NewRequest(42, OpSend, 7, SendRequest{To: "bob", Body: "a message of ordinary length, say forty bytes"})
	}, &SendRequest{})
}

func BenchmarkResponse100Messages(b *testing.B) {
	page := ReadResponse{Messages: manyMessages(100)}
	benchRoundTrip(b, func() (Frame, error) {
		return NewResponse(Frame{ID: 42, Op: OpRead}, page)
	}, &ReadResponse{})
}

func benchRoundTrip(b *testing.B, build func() (Frame, error), into any) {
	var (
		buf []byte
		rd  bytes.Reader
		br  = bufio.NewReaderSize(nil, readBufferSize)
	)
	for b.Loop() {
		f, err := build()
		if err != nil {
			b.Fatal(err)
		}
		if buf, err = EncodeFrame(buf[:0], f, DefaultMaxFrame); err != nil {
			b.Fatal(err)
		}
		rd.Reset(buf)
		br.Reset(&rd)
		got, err := readFrame(br, DefaultMaxFrame)
		if err != nil {
			b.Fatal(err)
		}
		if err := Decode(got.Body, into); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "frame-bytes")
}
