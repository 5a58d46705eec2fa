package e2e

// Malformed input on raw TCP connections (garbage, an oversize length
// prefix, a zero length, a half frame, invalid msgpack, deep nesting,
// HTTP), before and after the handshake, while a normal client keeps
// sending: the server answers each bad connection with one error frame (or
// just closes it), and the process stays up and keeps serving.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/wire"
)

// frame prefixes body with its big-endian length.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestMalformed_ServerStaysUp(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	addr := c.Addrs()[0]
	newClient(t, c, "sink", "pw", true)
	s := &sender{name: "steady", to: "sink", cl: newClient(t, c, "steady", "pw", true)}
	stopSender := runSenders(t, s)
	waitAcked(t, []*sender{s}, 5)

	nested := append(bytes.Repeat([]byte{0x91}, 100), 0x00) // 100 nested one-element arrays
	for _, tc := range []struct {
		name      string
		handshake bool   // say a valid hello first
		input     []byte // written, then (with halfClose) the write side closed
		halfClose bool
		codes     []wire.Code // acceptable codes of the error frame; nil: none expected
	}{
		{"garbage", false, []byte("this is not a replichat frame\r\n"), false,
			[]wire.Code{wire.CodeFrameTooLarge, wire.CodeBadHandshake, wire.CodeBadRequest}},
		// docs/wire.md: bad_handshake when the bad frame was the first.
		{"oversize length", false, append([]byte{0x7f, 0xff, 0xff, 0xff}, "xyz"...), false,
			[]wire.Code{wire.CodeFrameTooLarge, wire.CodeBadHandshake}},
		{"zero length", false, []byte{0, 0, 0, 0}, false, []wire.Code{wire.CodeBadHandshake, wire.CodeBadRequest}},
		{"http", false, []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"), false,
			[]wire.Code{wire.CodeFrameTooLarge, wire.CodeBadHandshake, wire.CodeBadRequest}},
		{"not msgpack", false, frame([]byte{0xc1, 0xc1, 0xc1}), false, []wire.Code{wire.CodeBadHandshake, wire.CodeBadRequest}},
		{"deep nesting", false, frame(nested), false, []wire.Code{wire.CodeBadHandshake, wire.CodeBadRequest}},
		{"half frame", false, append([]byte{0, 0, 0, 100}, "only ten b"...), true, nil},
		{"after hello: oversize length", true, []byte{0xff, 0xff, 0xff, 0xff}, false, []wire.Code{wire.CodeFrameTooLarge}},
		{"after hello: not msgpack", true, frame([]byte{0xc1}), false, []wire.Code{wire.CodeBadRequest}},
		{"after hello: half frame", true, append([]byte{0, 0, 1, 0}, 0x83), true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", addr)
			require.NoError(t, err)
			defer nc.Close()
			require.NoError(t, nc.SetDeadline(time.Now().Add(waitTimeout)))
			conn := wire.NewConn(nc, 0)
			if tc.handshake {
				_, err := conn.Handshake(ctx, wire.Hello{Role: wire.RoleClient, ClientID: "malformed-" + tc.name, Software: "e2e"})
				require.NoError(t, err)
				require.NoError(t, nc.SetDeadline(time.Now().Add(waitTimeout)))
			}
			_, err = nc.Write(tc.input)
			require.NoError(t, err)
			if tc.halfClose {
				require.NoError(t, nc.(*net.TCPConn).CloseWrite())
			}
			if tc.codes != nil {
				f, err := conn.ReadFrame()
				require.NoError(t, err, "an error frame before the close")
				require.NotNil(t, f.Error, "frame %+v", f)
				assert.Contains(t, tc.codes, f.Error.Code)
			}
			// Then the server closes the connection (a read deadline
			// instead would mean it kept it open).
			_, err = io.ReadAll(nc)
			if err != nil {
				assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the server kept the connection open")
			}
		})
	}

	// Idle connections that never speak do not stop the server either.
	var idle []net.Conn
	for range 20 {
		nc, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		idle = append(idle, nc)
	}
	n := s.ackedCount()
	waitAcked(t, []*sender{s}, n+5)
	for _, nc := range idle {
		nc.Close()
	}

	stopSender()
	require.True(t, c.Running(0), "chatd is still running")
	s.mu.Lock()
	assert.Empty(t, s.errs, "the well-behaved client never failed")
	s.mu.Unlock()
	sink := newClient(t, c, "sink", "pw", false)
	history := allHistory(t, sink)
	checkSends(t, []*sender{s}, history)
	assert.True(t, slices.ContainsFunc(history, func(m wire.Message) bool { return m.From == "steady" }))
	noCrashOutput(t, tailFile(c.LogPath(0), 1<<20))
}
