package transport

// These tests run real transports over TCP on 127.0.0.1 and check what the
// replication layer relies on: per-peer order, mutual authentication,
// bounded damage from strangers and broken peers, recovery after a peer
// restarts, a Send that never blocks, and a Run that leaves no goroutine
// behind.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTransport_ExchangeInOrder(t *testing.T) {
	const nodes, perPeer = 3, 300
	lns, peers := listen(t, nodes)
	ns := make([]*node, nodes)
	for i := range nodes {
		ns[i] = startNode(t, testConfig(NodeID(i), peers), lns[i])
	}
	// Sending before the connections exist is allowed: the queue holds it.
	for seq := range perPeer {
		for from := range nodes {
			for to := range nodes {
				if from == to {
					continue
				}
				require.True(t, ns[from].tr.Send(NodeID(to), fmt.Appendf(nil, "%d>%d:%d", from, to, seq)))
			}
		}
	}
	for to := range nodes {
		next := map[NodeID]int{}
		for range (nodes - 1) * perPeer {
			in := recv(t, ns[to].tr)
			want := fmt.Sprintf("%d>%d:%d", in.From, to, next[in.From])
			require.Equal(t, want, string(in.Msg), "message from %d out of order", in.From)
			next[in.From]++
		}
	}
	for i, n := range ns {
		st := n.tr.Peers()
		require.Len(t, st, nodes-1)
		for _, ps := range st {
			assert.NotEqual(t, NodeID(i), ps.ID)
			assert.Equal(t, peers[ps.ID], ps.Addr)
			assert.True(t, ps.Connected, "node %d -> %d", i, ps.ID)
			assert.Equal(t, uint64(perPeer), ps.SentMessages)
			assert.Equal(t, uint64(perPeer), ps.RecvMessages)
			assert.Equal(t, ps.SentBytes, ps.RecvBytes) // the message sizes are symmetric
			assert.Zero(t, ps.Dropped)
			assert.Zero(t, ps.Queued)
			assert.NoError(t, ps.LastError)
		}
	}
}

func TestTransport_WrongSecretRefusedBothWays(t *testing.T) {
	lns, peers := listen(t, 2)
	a := startNode(t, testConfig(0, peers), lns[0])
	cfgB := testConfig(1, peers)
	cfgB.Secret = []byte("another-cluster-secret-entirely")
	b := startNode(t, cfgB, lns[1])
	require.True(t, a.tr.Send(1, []byte("hello")))
	require.True(t, b.tr.Send(0, []byte("hello")))

	// Each dialer finds that the acceptor's challenge does not verify, and
	// each acceptor is told so.
	for _, n := range []*node{a, b} {
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			st := n.tr.Peers()[0]
			assert.ErrorIs(c, st.LastError, ErrAuth)
		}, waitFor, tick)
		err := waitAcceptErr(t, n)
		assert.ErrorIs(t, err, ErrRefused)
	}
	for _, n := range []*node{a, b} {
		st := n.tr.Peers()[0]
		assert.False(t, st.Connected)
		assert.False(t, st.Inbound)
		assert.Zero(t, st.SentMessages)
		assert.Equal(t, 1, st.Queued, "the message waits for a connection that never comes")
		assert.Empty(t, n.tr.Inbox())
	}
}

func TestAccept_RefusesBadHandshakes(t *testing.T) {
	lns, peers := listen(t, 3)
	acceptor := startNode(t, testConfig(1, peers), lns[1])
	addr := peers[1]

	helloFrame := func(version uint16, from, to NodeID) []byte {
		return hello{Version: version, From: from, To: to, Nonce: newNonce()}.frame([]byte(Magic))
	}
	tests := []struct {
		name       string
		send       []byte
		wantErr    error
		wantReason string // "" if the acceptor just closes
	}{
		{"bad version", helloFrame(Version+1, 0, 1), ErrVersion, reasonVersion},
		{"addressed to another replica", helloFrame(Version, 0, 2), ErrWrongPeer, reasonWrongPeer},
		{"unknown sender", helloFrame(Version, 7, 1), ErrWrongPeer, reasonWrongPeer},
		{"sender claims the acceptor's id", helloFrame(Version, 1, 1), ErrWrongPeer, reasonWrongPeer},
		{"short hello", appendFrame([]byte(Magic), []byte{frameHello, 0, 1}), ErrMalformed, reasonMalformed},
		{"proof instead of hello", proofFrame([]byte(Magic), [macLen]byte{}), ErrMalformed, reasonMalformed},
		{"oversized handshake frame", binary.BigEndian.AppendUint32([]byte(Magic), maxHandshakeFrame+1), ErrFrameTooLarge, reasonMalformed},
		{"huge length prefix", binary.BigEndian.AppendUint32([]byte(Magic), 0xffffffff), ErrFrameTooLarge, reasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := dialRaw(t, addr)
			p.write(t, tt.send)
			err := waitAcceptErr(t, acceptor)
			assert.ErrorIs(t, err, tt.wantErr)
			b, rerr := readFrame(p.conn, maxHandshakeFrame)
			require.NoError(t, rerr, "the acceptor sends a reason")
			assert.Equal(t, &RefusedError{Reason: tt.wantReason}, refusal(b))
			_, rerr = readFrame(p.conn, maxHandshakeFrame)
			assert.ErrorIs(t, rerr, io.EOF, "then closes")
		})
	}

	t.Run("proof made with another secret", func(t *testing.T) {
		p := dialRaw(t, addr)
		hs := handshaker{self: 0, secret: []byte("not-the-cluster-secret!")}
		// Skip the dialer's own check of the challenge, as an impostor would.
		hi := hello{Version: Version, From: 0, To: 1, Nonce: newNonce()}
		p.write(t, hi.frame([]byte(Magic)))
		b, err := readFrame(p.conn, maxHandshakeFrame)
		require.NoError(t, err)
		ch, err := decodeChallenge(b)
		require.NoError(t, err)
		p.write(t, proofFrame(nil, computeMAC(hs.secret, labelDialer, 0, 1, hi.Nonce, ch.Nonce)))

		assert.ErrorIs(t, waitAcceptErr(t, acceptor), ErrAuth)
		b, err = readFrame(p.conn, maxHandshakeFrame)
		require.NoError(t, err)
		assert.Equal(t, &RefusedError{Reason: reasonAuth}, refusal(b))
	})

	t.Run("replayed acceptor MAC as proof", func(t *testing.T) {
		p := dialRaw(t, addr)
		hi := hello{Version: Version, From: 0, To: 1, Nonce: newNonce()}
		p.write(t, hi.frame([]byte(Magic)))
		b, err := readFrame(p.conn, maxHandshakeFrame)
		require.NoError(t, err)
		ch, err := decodeChallenge(b)
		require.NoError(t, err)
		p.write(t, proofFrame(nil, ch.MAC))
		assert.ErrorIs(t, waitAcceptErr(t, acceptor), ErrAuth)
	})

	t.Run("valid handshake after all that", func(t *testing.T) {
		p := dialRaw(t, addr)
		require.NoError(t, p.handshake(0, 1, testSecret))
		p.write(t, appendFrame(nil, []byte("still serving")))
		in := recv(t, acceptor.tr)
		assert.Equal(t, Inbound{From: 0, Msg: []byte("still serving")}, in)
	})
}

func TestAccept_DropsStalledClients(t *testing.T) {
	_, peers := listen(t, 2)
	tr, err := New(testConfig(1, peers))
	require.NoError(t, err)

	tests := []struct {
		name    string
		send    []byte
		wantErr error
	}{
		{"sends nothing", nil, os.ErrDeadlineExceeded},
		{"sends only magic", []byte(Magic), os.ErrDeadlineExceeded},
		{"stops inside hello", append([]byte(Magic), 0, 0, 0, helloLen, frameHello), os.ErrDeadlineExceeded},
		{"sends garbage after magic", append([]byte(Magic), "GET / HTTP/1.1\r\n\r\n"...), ErrFrameTooLarge},
		{"is not a peer", []byte("GET / HTTP/1.1\r\n\r\n"), ErrNotPeer},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			defer client.Close()
			server, err := ln.Accept()
			require.NoError(t, err)
			_, err = client.Write(tt.send)
			require.NoError(t, err)

			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- tr.Accept(t.Context(), server, nil) }()
			select {
			case err := <-done:
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Less(t, time.Since(start), 3*testHandshakeTimeout)
			case <-time.After(waitFor):
				require.FailNow(t, "Accept did not drop the connection")
			}
			client.SetReadDeadline(time.Now().Add(waitFor))
			_, err = io.ReadAll(client)
			assert.NoError(t, err, "the connection is closed (EOF), not left hanging")
		})
	}
}

func TestAccept_OversizedMessageRefused(t *testing.T) {
	lns, peers := listen(t, 2)
	cfg := testConfig(1, peers)
	cfg.MaxMessage = 1000
	acceptor := startNode(t, cfg, lns[1])

	p := dialRaw(t, peers[1])
	require.NoError(t, p.handshake(0, 1, testSecret))
	p.write(t, appendFrame(nil, make([]byte, 1000)))
	assert.Len(t, recv(t, acceptor.tr).Msg, 1000, "a message of exactly MaxMessage passes")
	p.write(t, binary.BigEndian.AppendUint32(nil, 1001))
	assert.ErrorIs(t, waitAcceptErr(t, acceptor), ErrFrameTooLarge)
	_, err := io.ReadAll(p.conn)
	assert.NoError(t, err, "the connection is closed")

	assert.False(t, acceptor.tr.Send(0, make([]byte, 1001)), "Send refuses what the peer would refuse")
	assert.Equal(t, uint64(1), acceptor.tr.Peers()[0].Dropped)
}

func TestAccept_NewConnectionSupersedesOld(t *testing.T) {
	lns, peers := listen(t, 2)
	acceptor := startNode(t, testConfig(1, peers), lns[1])

	old := dialRaw(t, peers[1])
	require.NoError(t, old.handshake(0, 1, testSecret))
	old.write(t, appendFrame(nil, []byte("old")))
	assert.Equal(t, "old", string(recv(t, acceptor.tr).Msg))

	fresh := dialRaw(t, peers[1])
	require.NoError(t, fresh.handshake(0, 1, testSecret))
	assert.ErrorIs(t, waitAcceptErr(t, acceptor), ErrSuperseded)
	_, err := io.ReadAll(old.conn)
	assert.NoError(t, err, "the old connection is closed")

	fresh.write(t, appendFrame(nil, []byte("fresh")))
	assert.Equal(t, "fresh", string(recv(t, acceptor.tr).Msg))
	assert.True(t, acceptor.tr.Peers()[0].Inbound)
}

func TestTransport_ReconnectAfterPeerRestart(t *testing.T) {
	lns, peers := listen(t, 2)
	a := startNode(t, testConfig(0, peers), lns[0])
	b := startNode(t, testConfig(1, peers), lns[1])
	require.True(t, a.tr.Send(1, []byte("before")))
	assert.Equal(t, "before", string(recv(t, b.tr).Msg))

	b.stop()
	require.NoError(t, <-b.runErr)
	require.Eventually(t, func() bool { return !a.tr.Peers()[0].Connected }, waitFor, tick,
		"a notices that b went away without sending anything")

	ln, err := net.Listen("tcp", peers[1])
	require.NoError(t, err, "rebind b's port")
	b2 := startNode(t, testConfig(1, peers), ln)

	require.Eventually(t, func() bool { return a.tr.Peers()[0].Connected }, waitFor, tick)
	require.True(t, a.tr.Send(1, []byte("after")))
	assert.Equal(t, Inbound{From: 0, Msg: []byte("after")}, recv(t, b2.tr))
	require.True(t, b2.tr.Send(0, []byte("back")))
	assert.Equal(t, Inbound{From: 1, Msg: []byte("back")}, recv(t, a.tr))
	assert.NotNil(t, a.tr.Peers()[0].LastError, "the break is reported")
}

func TestSend_NeverBlocksWhenPeerIsDown(t *testing.T) {
	lns, peers := listen(t, 1)
	peers[1] = deadAddr(t)
	cfg := testConfig(0, peers)
	cfg.QueueLen = 4
	n := startNode(t, cfg, lns[0])

	for i := range 4 {
		require.True(t, n.tr.Send(1, []byte{byte(i)}))
	}
	assert.False(t, n.tr.Send(1, []byte("overflow")), "queue full")
	assert.False(t, n.tr.Send(0, []byte("self")), "self is not a peer")
	assert.False(t, n.tr.Send(9, []byte("stranger")), "unknown peer")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st := n.tr.Peers()[0]
		assert.ErrorIs(c, st.LastError, syscall.ECONNREFUSED)
	}, waitFor, tick, "the dial failure is reported")
	st := n.tr.Peers()[0]
	assert.Equal(t, 4, st.Queued)
	assert.Equal(t, uint64(1), st.Dropped)
	assert.False(t, st.Connected)

	n.stop()
	assert.False(t, n.tr.Send(1, nil), "stopped")
	assert.Equal(t, uint64(2), n.tr.Peers()[0].Dropped)
}

func TestRun_StopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	lns, peers := listen(t, 3)
	ns := make([]*node, 3)
	for i := range ns {
		ns[i] = startNode(t, testConfig(NodeID(i), peers), lns[i])
	}
	for i, n := range ns {
		require.True(t, n.tr.Send(NodeID((i+1)%3), []byte("x")))
	}
	for _, n := range ns {
		recv(t, n.tr)
	}
	// A handshake in progress is interrupted too.
	stalled := dialRaw(t, peers[0])
	stalled.write(t, []byte(Magic))

	for _, n := range ns {
		n.stop()
		assert.NoError(t, <-n.runErr)
	}
	assertGoroutinesBack(t, before)

	tr := ns[0].tr
	assert.ErrorIs(t, tr.Run(t.Context()), ErrClosed, "Run cannot restart")
	c1, c2 := net.Pipe()
	defer c2.Close()
	assert.ErrorIs(t, tr.Accept(t.Context(), c1, nil), ErrClosed)
}

func TestAccept_StopsOnContext(t *testing.T) {
	lns, peers := listen(t, 2)
	acceptor, err := New(testConfig(1, peers))
	require.NoError(t, err)
	client, err := net.Dial("tcp", lns[1].Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := lns[1].Accept()
	require.NoError(t, err)
	p := &rawPeer{conn: client}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- acceptor.Accept(ctx, server, bufio.NewReader(server)) }()
	require.NoError(t, p.handshake(0, 1, testSecret))
	p.write(t, appendFrame(nil, []byte("m")))
	assert.Equal(t, "m", string(recv(t, acceptor).Msg), "Accept works before Run")
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(waitFor):
		require.FailNow(t, "Accept ignored its context")
	}
}

func TestIsPeer(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    bool
		wantErr error
	}{
		{"magic", Magic + "rest", true, nil},
		{"exactly magic", Magic, true, nil},
		{"chat frame", "\x00\x00\x00\x10hello", false, nil},
		{"differs at the last byte", Magic[:7] + "2", false, nil},
		{"empty", "", false, io.EOF},
		{"prefix of magic then EOF", Magic[:3], false, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.input))
			got, err := IsPeer(r)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, tt.want, got)
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			assert.Equal(t, tt.input, string(rest), "nothing consumed")
		})
	}

	t.Run("does not wait for 8 bytes from a non-peer", func(t *testing.T) {
		server, client := net.Pipe()
		defer server.Close()
		defer client.Close()
		go client.Write([]byte{0}) // then nothing more, ever
		done := make(chan bool, 1)
		go func() {
			ok, _ := IsPeer(bufio.NewReader(server))
			done <- ok
		}()
		select {
		case ok := <-done:
			assert.False(t, ok)
		case <-time.After(waitFor):
			require.FailNow(t, "IsPeer waited for more input")
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	peers := map[NodeID]string{0: "127.0.0.1:1", 1: "127.0.0.1:2"}
	valid := func() Config { return Config{Self: 0, Peers: peers, Secret: testSecret} }
	tests := []struct {
		name   string
		modify func(c *Config)
	}{
		{"no peers", func(c *Config) { c.Peers = nil }},
		{"self not in peers", func(c *Config) { c.Self = 5 }},
		{"empty address", func(c *Config) { c.Peers = map[NodeID]string{0: "a:1", 1: ""} }},
		{"short secret", func(c *Config) { c.Secret = make([]byte, MinSecretLen-1) }},
		{"negative dial timeout", func(c *Config) { c.DialTimeout = -1 }},
		{"negative handshake timeout", func(c *Config) { c.HandshakeTimeout = -1 }},
		{"negative write timeout", func(c *Config) { c.WriteTimeout = -1 }},
		{"reconnect max below min", func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Second, time.Millisecond }},
		{"negative queue", func(c *Config) { c.QueueLen = -1 }},
		{"negative inbox", func(c *Config) { c.InboxLen = -1 }},
		{"negative max message", func(c *Config) { c.MaxMessage = -1 }},
		{"max message beyond the length prefix", func(c *Config) { c.MaxMessage = 1 << 31 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(&c)
			_, err := New(c)
			assert.ErrorIs(t, err, ErrInvalidConfig)
		})
	}

	t.Run("defaults", func(t *testing.T) {
		c := valid()
		tr, err := New(c)
		require.NoError(t, err)
		assert.Equal(t, DefaultMaxMessage, tr.cfg.MaxMessage)
		assert.Equal(t, DefaultQueueLen, cap(tr.peers[1].queue))
		assert.Equal(t, DefaultInboxLen, cap(tr.inbox))
		assert.Equal(t, DefaultHandshakeTimeout, tr.cfg.HandshakeTimeout)
		assert.Equal(t, DefaultReconnectMax, tr.cfg.ReconnectMax)
		assert.NotNil(t, tr.cfg.Logger)
		assert.Equal(t, "7", NodeID(7).String())
		c.Secret = append([]byte(nil), testSecret...)
		tr, err = New(c)
		require.NoError(t, err)
		c.Secret[0]++
		assert.Equal(t, testSecret, tr.cfg.Secret, "the secret is copied")
	})
}

func TestBackoff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const minD, maxD = 10 * time.Millisecond, 300 * time.Millisecond
	for failures, ceiling := range map[int]time.Duration{
		1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 5: 160 * time.Millisecond,
		6: 300 * time.Millisecond, 60: 300 * time.Millisecond,
	} {
		for range 100 {
			d := backoff(minD, maxD, failures, rng)
			assert.GreaterOrEqual(t, d, ceiling/2, "failures %d", failures)
			assert.Less(t, d, ceiling, "failures %d", failures)
		}
	}
}

// assertGoroutinesBack waits until no more goroutines run than before. It
// polls from the test's own goroutine, because assert.Eventually would count
// its own.
func assertGoroutinesBack(t *testing.T, before int) {
	t.Helper()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	deadline := time.After(waitFor)
	for runtime.NumGoroutine() > before {
		select {
		case <-ticker.C:
		case <-deadline:
			buf := make([]byte, 1<<20)
			assert.Fail(t, "goroutines left behind", "before: %d, now: %d\n%s",
				before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			return
		}
	}
}

// A peer that connects to us is up: our writer redials at once instead of
// sitting out a reconnect delay that grew while the peer was down (the
// restarted replica would otherwise hear nothing for up to ReconnectMax).
func TestTransport_InboundConnectionCutsReconnectDelay(t *testing.T) {
	lns, peers := listen(t, 2)
	require.NoError(t, lns[1].Close(), "b is down when a starts")
	cfg := testConfig(0, peers)
	cfg.ReconnectMin, cfg.ReconnectMax = time.Hour, time.Hour
	a := startNode(t, cfg, lns[0])
	require.Eventually(t, func() bool { return a.tr.Peers()[0].LastError != nil }, waitFor, tick,
		"a's first dial fails, so it backs off for half an hour or more")
	require.False(t, a.tr.Peers()[0].Connected)

	ln, err := net.Listen("tcp", peers[1])
	require.NoError(t, err, "rebind b's port")
	b := startNode(t, testConfig(1, peers), ln)
	require.Eventually(t, func() bool { return a.tr.Peers()[0].Connected }, waitFor, tick,
		"b's connection to a wakes a's writer")
	require.True(t, a.tr.Send(1, []byte("hello")))
	assert.Equal(t, Inbound{From: 0, Msg: []byte("hello")}, recv(t, b.tr))
}
