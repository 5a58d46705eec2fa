package wire

// These tests run Conn over net.Pipe and loopback TCP: concurrent writers
// never interleave frames, deadlines end a read stuck in a half frame, and
// the handshake accepts exactly what docs/wire.md says.

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipe returns the two ends of a net.Pipe as Conns, closed at cleanup.
func pipe(t *testing.T, maxFrame uint32) (client, server *Conn) {
	t.Helper()
	a, b := net.Pipe()
	client, server = NewConn(a, maxFrame), NewConn(b, maxFrame)
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return client, server
}

func TestConn_ConcurrentWriters(t *testing.T) {
	client, server := pipe(t, 0)
	const writers, perWriter = 8, 50

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				id := uint64(w*perWriter + i + 1)
				// Bodies larger than the pipe's chunks make an interleaving visible.
				f, err := NewRequest(id, OpSend, id, SendRequest{To: "bob", Body: strings.Repeat(string(rune('a'+w)), 100+i*50)})
				if !assert.NoError(t, err) {
					return
				}
				assert.NoError(t, client.WriteFrame(f))
			}
		})
	}

	seen := make(map[uint64]bool)
	for range writers * perWriter {
		f, err := server.ReadFrame()
		require.NoError(t, err)
		var req SendRequest
		require.NoError(t, Decode(f.Body, &req))
		w, i := int(f.ID-1)/perWriter, int(f.ID-1)%perWriter
		assert.Equal(t, strings.Repeat(string(rune('a'+w)), 100+i*50), req.Body)
		assert.Equal(t, f.ID, f.Seq)
		assert.False(t, seen[f.ID], "frame %d twice", f.ID)
		seen[f.ID] = true
	}
	wg.Wait()
	assert.Len(t, seen, writers*perWriter)
}

func TestConn_LargeFrame(t *testing.T) {
	client, server := pipe(t, 0)
	big, err := NewResponse(Frame{ID: 3, Op: OpHistory}, HistoryResponse{Messages: manyMessages(2000)})
	require.NoError(t, err)
	require.Greater(t, len(big.Body), readBufferSize, "exercises the path beyond the read buffer")

	go func() { assert.NoError(t, server.WriteFrame(big)) }()
	got, err := client.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, big, got)
}

func TestConn_WriteTooLarge(t *testing.T) {
	client, server := pipe(t, 64)
	f, err := NewRequest(1, OpSend, 1, SendRequest{To: "bob", Body: strings.Repeat("x", 64)})
	require.NoError(t, err)
	assert.ErrorIs(t, client.WriteFrame(f), ErrFrameTooLarge)

	// Nothing was written: the connection still carries the next frame.
	go func() { assert.NoError(t, client.WriteFrame(Frame{Kind: KindRequest, ID: 2, Op: OpPing})) }()
	got, err := server.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), got.ID)
}

func TestConn_ReadTooLarge(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	server := NewConn(b, 1000)
	go func() {
		_, _ = a.Write(binary.BigEndian.AppendUint32(nil, 1001))
	}()
	_, err := server.ReadFrame()
	assert.ErrorIs(t, err, ErrFrameTooLarge)
	assert.Equal(t, CodeFrameTooLarge, ErrorOf(err).Code)
}

func TestConn_DeadlineOnHalfFrame(t *testing.T) {
	frame, err := EncodeFrame(nil, Frame{Kind: KindRequest, ID: 1, Op: OpPing}, DefaultMaxFrame)
	require.NoError(t, err)

	for _, cut := range []int{2, len(frame) - 1} { // in the header, in the body
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			a, b := net.Pipe()
			t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
			server := NewConn(b, 0)
			go func() { _, _ = a.Write(frame[:cut]) }()
			require.NoError(t, b.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
			_, err := server.ReadFrame()
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			assert.Equal(t, CodeTimeout, ErrorOf(err).Code)
		})
	}
}

func TestConn_CloseUnblocksReader(t *testing.T) {
	client, server := pipe(t, 0)
	done := make(chan error)
	go func() {
		_, err := server.ReadFrame()
		done <- err
	}()
	require.NoError(t, client.Close())
	assert.Same(t, io.EOF, <-done)
}

func TestConn_Hijack(t *testing.T) {
	client, server := pipe(t, 0)
	hello, err := NewRequest(1, OpHello, 0, Hello{Version: Version, Role: RolePeer, ClientID: "replica-1"})
	require.NoError(t, err)
	wire, err := EncodeFrame(nil, hello, DefaultMaxFrame)
	require.NoError(t, err)
	// The peer sends its hello and its next protocol's bytes in one write,
	// so the Conn's reader buffers some of the latter.
	go func() { _, _ = client.NetConn().Write(append(wire, "PEER-PROTOCOL"...)) }()

	_, h, err := server.AcceptHello(t.Context())
	require.NoError(t, err)
	assert.Equal(t, RolePeer, h.Role)

	nc := server.Hijack()
	got := make([]byte, len("PEER-PROTOCOL"))
	_, err = io.ReadFull(nc, got)
	require.NoError(t, err)
	assert.Equal(t, "PEER-PROTOCOL", string(got))

	// Nothing buffered: the plain connection comes back.
	_, s2 := pipe(t, 0)
	assert.Same(t, s2.NetConn(), s2.Hijack())
}

func TestConn_Handshake(t *testing.T) {
	client, server := pipe(t, 0)
	server.SetMaxFrame(4096)
	want := HelloOK{Version: Version, ServerID: 1, Role: RolePrimary, Epoch: 4, Primary: "127.0.0.1:7101", MaxFrame: 4096}

	go func() {
		req, h, err := server.AcceptHello(t.Context())
		if !assert.NoError(t, err) {
			return
		}
		assert.Equal(t, Hello{Version: Version, Role: RoleClient, ClientID: "abc", Software: "test"}, h)
		resp, err := NewResponse(req, want)
		if assert.NoError(t, err) {
			assert.NoError(t, server.WriteFrame(resp))
		}
	}()
	ok, err := client.Handshake(t.Context(), Hello{Role: RoleClient, ClientID: "abc", Software: "test"})
	require.NoError(t, err)
	assert.Equal(t, want, ok)
	assert.Equal(t, uint32(4096), client.MaxFrame(), "the client adopts a smaller server limit")
}

func TestConn_AcceptHelloRefusals(t *testing.T) {
	hello := func(h Hello) Frame {
		f, err := NewRequest(1, OpHello, 0, h)
		require.NoError(t, err)
		return f
	}
	good := Hello{Version: Version, Role: RoleClient, ClientID: "abc"}
	tests := []struct {
		name  string
		first Frame
		want  Code
	}{
		{"not hello", Frame{Kind: KindRequest, ID: 1, Op: OpPing}, CodeBadHandshake},
		{"hello as push", Frame{Kind: KindPush, Op: OpHello, Body: mustEncode(good)}, CodeBadHandshake},
		{"bad body", Frame{Kind: KindRequest, ID: 1, Op: OpHello, Body: mustEncode("hello")}, CodeBadHandshake},
		{"old version", hello(Hello{Version: 0, Role: RoleClient, ClientID: "abc"}), CodeUnsupportedVersion},
		{"new version", hello(Hello{Version: 2, Role: RoleClient, ClientID: "abc"}), CodeUnsupportedVersion},
		{"no client id", hello(Hello{Version: Version, Role: RoleClient}), CodeBadHandshake},
		{"long client id", hello(Hello{Version: Version, Role: RoleClient, ClientID: strings.Repeat("x", MaxClientIDLen+1)}), CodeBadHandshake},
		{"unknown role", hello(Hello{Version: Version, Role: "admin", ClientID: "abc"}), CodeBadHandshake},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pipe(t, 0)
			done := make(chan error, 1)
			go func() {
				_, _, err := server.AcceptHello(t.Context())
				done <- err
			}()
			require.NoError(t, client.WriteFrame(tc.first))
			resp, err := client.ReadFrame()
			require.NoError(t, err)
			require.NotNil(t, resp.Error)
			assert.Equal(t, KindResponse, resp.Kind)
			assert.Equal(t, tc.first.ID, resp.ID)
			assert.Equal(t, tc.want, resp.Error.Code)

			err = <-done
			e, ok := err.(*Error)
			require.True(t, ok, "AcceptHello returns the *Error it sent: %v", err)
			assert.Equal(t, tc.want, e.Code)
		})
	}
}

func TestConn_AcceptHelloGarbage(t *testing.T) {
	client, server := pipe(t, 0)
	done := make(chan error, 1)
	go func() {
		_, _, err := server.AcceptHello(t.Context())
		done <- err
	}()
	_, err := client.NetConn().Write(frameBytes(1, []byte{0xc1}))
	require.NoError(t, err)
	resp, err := client.ReadFrame()
	require.NoError(t, err)
	require.NotNil(t, resp.Error)
	assert.Equal(t, CodeBadHandshake, resp.Error.Code)
	assert.Equal(t, uint64(0), resp.ID)
	assert.ErrorIs(t, <-done, ErrMalformedFrame)
}

func TestConn_HandshakeRefused(t *testing.T) {
	client, server := pipe(t, 0)
	go func() { _, _, _ = server.AcceptHello(t.Context()) }()
	_, err := client.Handshake(t.Context(), Hello{Version: 9, Role: RoleClient, ClientID: "abc"})
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, CodeUnsupportedVersion, e.Code)
	assert.False(t, e.Retryable())
}

func TestConn_HandshakeBadAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer func(req Frame) Frame
		want   error
	}{
		{"push instead", func(Frame) Frame {
			return Frame{Kind: KindPush, Op: PushMessage}
		}, ErrMalformedFrame},
		{"wrong id", func(req Frame) Frame {
			return Frame{Kind: KindResponse, ID: req.ID + 1, Body: mustEncode(HelloOK{Version: Version})}
		}, ErrMalformedFrame},
		{"bad body", func(req Frame) Frame {
			return Frame{Kind: KindResponse, ID: req.ID, Body: mustEncode([]int{1})}
		}, ErrMalformedBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pipe(t, 0)
			go func() {
				req, err := server.ReadFrame()
				if assert.NoError(t, err) {
					assert.NoError(t, server.WriteFrame(tc.answer(req)))
				}
			}()
			_, err := client.Handshake(t.Context(), Hello{Role: RoleClient, ClientID: "abc"})
			assert.ErrorIs(t, err, tc.want)
		})
	}

	t.Run("other version", func(t *testing.T) {
		client, server := pipe(t, 0)
		go func() {
			req, _, err := server.AcceptHello(t.Context())
			if assert.NoError(t, err) {
				resp, err := NewResponse(req, HelloOK{Version: Version + 1})
				require.NoError(t, err)
				assert.NoError(t, server.WriteFrame(resp))
			}
		}()
		_, err := client.Handshake(t.Context(), Hello{Role: RoleClient, ClientID: "abc"})
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, CodeUnsupportedVersion, e.Code)
	})
}

func TestConn_HandshakeContext(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		client, server := pipe(t, 0)
		go func() { _, _ = server.ReadFrame() }() // reads the hello, never answers
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			_, err := client.Handshake(ctx, Hello{Role: RoleClient, ClientID: "abc"})
			done <- err
		}()
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})
	t.Run("deadline", func(t *testing.T) {
		_, server := pipe(t, 0)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, _, err := server.AcceptHello(ctx) // the client says nothing
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})
	t.Run("already done", func(t *testing.T) {
		client, _ := pipe(t, 0)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := client.Handshake(ctx, Hello{Role: RoleClient, ClientID: "abc"})
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("deadline cleared after", func(t *testing.T) {
		a, b := net.Pipe()
		t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
		rec := &deadlineRecorder{Conn: a}
		client, server := NewConn(rec, 0), NewConn(b, 0)
		go func() {
			req, _, err := server.AcceptHello(t.Context())
			if assert.NoError(t, err) {
				resp, err := NewResponse(req, HelloOK{Version: Version})
				require.NoError(t, err)
				assert.NoError(t, server.WriteFrame(resp))
			}
		}()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := client.Handshake(ctx, Hello{Role: RoleClient, ClientID: "abc"})
		require.NoError(t, err)
		d, _ := ctx.Deadline()
		assert.Equal(t, []time.Time{d, {}}, rec.deadlines(), "the context's deadline, then none")
	})
}

// deadlineRecorder is a net.Conn that records the deadlines set on it.
type deadlineRecorder struct {
	net.Conn
	mu  sync.Mutex
	set []time.Time
}

func (d *deadlineRecorder) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.set = append(d.set, t)
	d.mu.Unlock()
	return d.Conn.SetDeadline(t)
}

func (d *deadlineRecorder) deadlines() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.set...)
}

// TestConn_TCP runs a pipelined exchange over a real loopback socket.
func TestConn_TCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })

	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		nc, err := ln.Accept()
		if !assert.NoError(t, err) {
			return
		}
		c := NewConn(nc, 0)
		defer func() { _ = c.Close() }()
		for {
			req, err := c.ReadFrame()
			if err != nil {
				assert.Same(t, io.EOF, err)
				return
			}
			resp, err := NewResponse(req, PingResponse{})
			require.NoError(t, err)
			assert.NoError(t, c.WriteFrame(resp))
		}
	}()

	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	c := NewConn(nc, 0)
	for id := uint64(1); id <= 100; id++ { // pipelined: all sent before any is read
		require.NoError(t, c.WriteFrame(Frame{Kind: KindRequest, ID: id, Op: OpPing}))
	}
	for id := uint64(1); id <= 100; id++ {
		resp, err := c.ReadFrame()
		require.NoError(t, err)
		assert.Equal(t, id, resp.ID)
		assert.Equal(t, OpPing, resp.Op)
	}
	require.NoError(t, c.Close())
	<-serverDone
}

func manyMessages(n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{ID: uint64(1000 + i), From: "alice", To: "bob",
			Body: "a message of ordinary length, say forty bytes", SentAt: 1_764_000_000_000_000_000 + int64(i)}
	}
	return msgs
}
