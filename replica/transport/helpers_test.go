package transport

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Test timeouts: short, so that failure paths finish fast, and far above
// what loopback needs, so that they do not fire by accident under -race.
const (
	testHandshakeTimeout = 300 * time.Millisecond
	waitFor              = 5 * time.Second
	tick                 = 2 * time.Millisecond
)

var testSecret = []byte("0123456789abcdef-test-secret")

// listen returns n listeners on 127.0.0.1 and the peers map that names them
// 0..n-1.
func listen(t testing.TB, n int) ([]net.Listener, map[NodeID]string) {
	t.Helper()
	lns := make([]net.Listener, n)
	peers := make(map[NodeID]string, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		lns[i] = ln
		peers[NodeID(i)] = ln.Addr().String()
	}
	return lns, peers
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func testConfig(self NodeID, peers map[NodeID]string) Config {
	return Config{
		Self:             self,
		Peers:            peers,
		Secret:           testSecret,
		DialTimeout:      time.Second,
		HandshakeTimeout: testHandshakeTimeout,
		WriteTimeout:     2 * time.Second,
		ReconnectMin:     2 * time.Millisecond,
		ReconnectMax:     20 * time.Millisecond,
	}
}

// node is one transport served the way the chat server serves it: an accept
// loop that peeks with IsPeer and hands peer connections to Accept.
type node struct {
	tr         *Transport
	ln         net.Listener
	acceptErrs chan error // what Accept returned, most recent last (buffered, lossy)
	runErr     chan error // what Run returned
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	once       sync.Once
}

// startNode runs a transport with cfg on ln until stop or the test's end.
func startNode(t testing.TB, cfg Config, ln net.Listener) *node {
	t.Helper()
	tr, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	n := &node{tr: tr, ln: ln, acceptErrs: make(chan error, 64), runErr: make(chan error, 1), cancel: cancel}
	n.wg.Go(func() { n.runErr <- tr.Run(ctx) })
	n.wg.Go(func() { n.serve(ctx) })
	t.Cleanup(n.stop)
	return n
}

func (n *node) serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { n.ln.Close() })
	defer stop()
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.wg.Go(func() {
			br := bufio.NewReader(conn)
			conn.SetReadDeadline(time.Now().Add(testHandshakeTimeout))
			ok, err := IsPeer(br)
			if err != nil || !ok {
				conn.Close()
				return
			}
			err = n.tr.Accept(ctx, conn, br)
			select {
			case n.acceptErrs <- err:
			default:
			}
		})
	}
}

// stop cancels the node and waits for Run, the accept loop and every Accept
// to return.
func (n *node) stop() {
	n.once.Do(func() {
		n.cancel()
		n.ln.Close()
		n.wg.Wait()
	})
}

// recv waits for the next inbound message. It checks that the message is
// stamped with its arrival and returns it without the stamp, for comparing.
func recv(t testing.TB, tr *Transport) Inbound {
	t.Helper()
	select {
	case in := <-tr.Inbox():
		assert.WithinDuration(t, time.Now(), in.Received, waitFor, "stamped when read")
		in.Received = time.Time{}
		return in
	case <-time.After(waitFor):
		require.FailNow(t, "no message received")
		return Inbound{}
	}
}

// rawPeer is a hand-driven dialer, for breaking the protocol on purpose.
type rawPeer struct {
	conn net.Conn
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitFor)))
	return &rawPeer{conn: conn}
}

func (p *rawPeer) write(t *testing.T, b []byte) {
	t.Helper()
	_, err := p.conn.Write(b)
	require.NoError(t, err)
}

// handshake authenticates as replica from with the given secret.
func (p *rawPeer) handshake(from, to NodeID, secret []byte) error {
	hs := handshaker{self: from, secret: secret}
	return hs.dial(p.conn, p.conn, to)
}

// waitAcceptErr waits for the node's next Accept to return.
func waitAcceptErr(t *testing.T, n *node) error {
	t.Helper()
	select {
	case err := <-n.acceptErrs:
		return err
	case <-time.After(waitFor):
		require.FailNow(t, "Accept did not return")
		return nil
	}
}
