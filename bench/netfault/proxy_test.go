package netfault

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/replica/transport"
)

// echoServer accepts connections and echoes what it reads on each; greet,
// if set, is written first on every connection.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func startEcho(t *testing.T, greet string) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &echoServer{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				if greet != "" {
					c.Write([]byte(greet))
				}
				io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

// preamble is what a replica's transport sends first on a connection it
// dials: Magic, then the hello frame (type, version, from, to, nonce).
func preamble(from, to uint32) []byte {
	body := []byte{helloType, 0, 1}
	body = binary.BigEndian.AppendUint32(body, from)
	body = binary.BigEndian.AppendUint32(body, to)
	body = append(body, make([]byte, 32)...)
	out := []byte(transport.Magic)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

// startProxy starts a proxy in front of n echo servers.
func startProxy(t *testing.T, n int, cfg Config) (*Proxy, []*echoServer) {
	t.Helper()
	var servers []*echoServer
	for range n {
		s := startEcho(t, "")
		servers = append(servers, s)
		cfg.Targets = append(cfg.Targets, s.addr())
	}
	p, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p, servers
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// dialPeer opens a connection to replica to's proxy address as replica
// from would, and reads back the echoed preamble.
func dialPeer(t *testing.T, p *Proxy, from, to int) net.Conn {
	t.Helper()
	c := dial(t, p.Addr(to))
	pre := preamble(uint32(from), uint32(to))
	_, err := c.Write(pre)
	require.NoError(t, err)
	expect(t, c, string(pre))
	return c
}

// expect reads exactly want from c within 2s.
func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	got := make([]byte, len(want))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, want, string(got))
}

// silent checks that nothing arrives on c for d, and that c stays open.
func silent(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	require.Zero(t, n, "bytes passed a cut link")
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the connection must stay open while held")
}

// closed checks that c is closed by the proxy within 2s.
func closed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := io.ReadAll(c)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "connection not closed")
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	_, err := c.Write([]byte(s))
	require.NoError(t, err)
}

func TestProxy_ClassifiesClientsAndPeers(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 3, Config{})

	cl := dial(t, p.Addr(2))
	write(t, cl, "hello")
	expect(t, cl, "hello")

	peer := dialPeer(t, p, 0, 1)
	write(t, peer, "ping")
	expect(t, peer, "ping")

	// Magic with a hello frame of the wrong shape is not a peer link.
	odd := dial(t, p.Addr(0))
	bad := append([]byte(transport.Magic), 0, 0, 0, 2, 9, 9)
	_, err := odd.Write(bad)
	require.NoError(t, err)
	expect(t, odd, string(bad))

	want := map[Link]LinkStats{
		{Client, 2}: {Conns: 1, Bytes: 5},
		{2, Client}: {Bytes: 5},
		{0, 1}:      {Conns: 1, Bytes: int64(len(preamble(0, 1)) + 4)},
		{1, 0}:      {Bytes: int64(len(preamble(0, 1)) + 4)},
		{Client, 0}: {Conns: 1, Bytes: int64(len(bad))},
		{0, Client}: {Bytes: int64(len(bad))},
	}
	// The counts are updated once a write returns, which may be after the
	// echo came back.
	assert.Eventually(t, func() bool {
		st := p.Stats()
		for l, w := range want {
			if st[l] != w {
				return false
			}
		}
		return len(st) == len(want)
	}, 2*time.Second, 10*time.Millisecond, "stats %v, want %v", p.Stats(), want)
}

func TestProxy_SilentConnectionIsAClient(t *testing.T) {
	t.Parallel()
	srv := startEcho(t, "welcome")
	p, err := New(Config{Targets: []string{srv.addr()}, ClassifyTimeout: 50 * time.Millisecond})
	require.NoError(t, err)
	defer p.Close()
	c := dial(t, p.Addr(0))
	expect(t, c, "welcome")
	assert.Equal(t, int64(1), p.Stats()[Link{Client, 0}].Conns)
}

func TestProxy_CutHoldsAndHealResumesInOrder(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 2, Config{})
	c := dialPeer(t, p, 0, 1)

	p.Cut(0, 1)
	assert.True(t, p.IsCut(Link{0, 1}))
	assert.False(t, p.IsCut(Link{1, 0}))
	var want bytes.Buffer
	for i := range 50 {
		s := string(rune('a'+i%26)) + "-"
		want.WriteString(s)
		write(t, c, s)
	}
	silent(t, c, 300*time.Millisecond)
	assert.Eventually(t, func() bool { return p.Stats()[Link{0, 1}].Held > 0 }, 2*time.Second, 10*time.Millisecond, "the cut held bytes")

	p.Heal()
	expect(t, c, want.String())
	assert.Empty(t, p.Cuts())

	// The other direction: the request gets through, the echo is held.
	p.Cut(1, 0)
	write(t, c, "back")
	silent(t, c, 300*time.Millisecond)
	p.Restore(1, 0)
	expect(t, c, "back")
	assert.Positive(t, p.Stats()[Link{1, 0}].Held)
}

func TestProxy_NewConnectionOnACutLinkWaits(t *testing.T) {
	t.Parallel()
	p, servers := startProxy(t, 2, Config{})
	p.Cut(0, 1)
	c := dial(t, p.Addr(1))
	pre := preamble(0, 1)
	_, err := c.Write(pre)
	require.NoError(t, err)
	silent(t, c, 300*time.Millisecond)
	assert.Zero(t, servers[1].accepted.Load(), "the replica must not be dialed across a cut")
	p.Heal()
	expect(t, c, string(pre))
	assert.Equal(t, int64(1), servers[1].accepted.Load())
}

func TestProxy_ResetCloses(t *testing.T) {
	t.Parallel()
	p, servers := startProxy(t, 3, Config{})
	held := dialPeer(t, p, 0, 1)
	other := dialPeer(t, p, 2, 1)
	reverse := dialPeer(t, p, 1, 0) // its answers flow 0 -> 1

	p.Cut(0, 1)
	silent(t, held, 100*time.Millisecond)
	p.SetReset(true) // closes what is held now
	closed(t, held)
	closed(t, reverse)
	write(t, other, "still")
	expect(t, other, "still")

	// A new connection on the cut link is closed without dialing.
	before := servers[1].accepted.Load()
	c := dial(t, p.Addr(1))
	_, err := c.Write(preamble(0, 1))
	require.NoError(t, err)
	closed(t, c)
	assert.Equal(t, before, servers[1].accepted.Load())

	st := p.Stats()
	assert.Equal(t, int64(2), st[Link{0, 1}].Resets)
	assert.Equal(t, int64(1), st[Link{1, 0}].Resets)
	assert.Zero(t, st[Link{2, 1}].Resets)

	// Healed, the link works again.
	p.Heal()
	dialPeer(t, p, 0, 1)
}

func TestProxy_ResetModeFromTheStart(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 2, Config{Reset: true})
	c := dialPeer(t, p, 1, 0)
	p.Isolate(0)
	closed(t, c)
	assert.Equal(t, int64(1), p.Stats()[Link{1, 0}].Resets)
}

func TestProxy_CutClients(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 2, Config{})
	cl := dial(t, p.Addr(0))
	write(t, cl, "x")
	expect(t, cl, "x")
	peer := dialPeer(t, p, 1, 0)

	p.CutClients(0)
	write(t, cl, "held")
	silent(t, cl, 200*time.Millisecond)
	write(t, peer, "peer")
	expect(t, peer, "peer") // peer links are not client links
	cl2 := dial(t, p.Addr(1))
	write(t, cl2, "other")
	expect(t, cl2, "other") // nor are another replica's clients

	assert.Equal(t, []Link{{Client, 0}, {0, Client}}, p.Cuts())
	p.RestoreClients(0)
	expect(t, cl, "held")
}

func TestProxy_PartitionAndIsolate(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 3, Config{})
	p.Partition([]int{0}, []int{1, 2})
	assert.Equal(t, []Link{{0, 1}, {0, 2}, {1, 0}, {2, 0}}, p.Cuts())
	p.Heal()
	p.Isolate(2)
	assert.Equal(t, []Link{{0, 2}, {1, 2}, {2, 0}, {2, 1}}, p.Cuts())
	p.Heal()
	assert.Empty(t, p.Cuts())
	assert.Panics(t, func() { p.Cut(0, 3) })
	assert.Panics(t, func() { p.Cut(1, 1) })
}

func TestProxy_Rate(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 2, Config{})
	c := dialPeer(t, p, 0, 1)
	p.SetRate(0, 1, 20_000)
	payload := bytes.Repeat([]byte("r"), 8_000)
	start := time.Now()
	_, err := c.Write(payload)
	require.NoError(t, err)
	expect(t, c, string(payload))
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "8 kB at 20 kB/s")
	p.Heal()
	// 80 kB, which the old rate would spread over 4 s: a bound loose enough
	// for a loaded -race run still tells the two apart.
	payload = bytes.Repeat([]byte("h"), 80_000)
	start = time.Now()
	_, err = c.Write(payload)
	require.NoError(t, err)
	expect(t, c, string(payload))
	assert.Less(t, time.Since(start), 1500*time.Millisecond, "healed: no rate")
}

func TestProxy_HalfCloseIsForwarded(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 1, Config{})
	c := dial(t, p.Addr(0))
	write(t, c, "bye")
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "bye", string(got))
}

func TestProxy_CloseStopsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	srv := startEcho(t, "")
	p, err := New(Config{Targets: []string{srv.addr(), srv.addr()}})
	require.NoError(t, err)
	held := dialPeer(t, p, 0, 1)
	p.Cut(0, 1)
	write(t, held, "stuck")
	silent(t, held, 50*time.Millisecond)
	waiting := dial(t, p.Addr(1)) // held while unclassified
	cl := dial(t, p.Addr(0))
	write(t, cl, "x")
	expect(t, cl, "x")
	_ = waiting
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	closed(t, held)
	closed(t, cl)
	// Only the echo server's goroutines (its accept loop and its
	// connections, which end with the test) may remain.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), base+1)
	_, err = net.DialTimeout("tcp", p.Addr(0), time.Second)
	assert.Error(t, err, "the proxy stopped listening")
}

func TestFlap_SeededAndRestores(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []FlapEvent {
		p, _ := startProxy(t, 3, Config{})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		evs := Flap(ctx, p, rand.New(rand.NewPCG(seed, 1)), FlapConfig{MinWait: 5 * time.Millisecond, MaxWait: 10 * time.Millisecond, MaxCut: 3})
		assert.Empty(t, p.Cuts(), "Flap restores what it cut")
		return evs
	}
	a, b := run(7), run(7)
	require.Greater(t, len(a), 5)
	require.Greater(t, len(b), 5)
	// The same choices, as far as both got (the last is the final restore).
	n := min(len(a), len(b)) - 1
	for i := range n {
		assert.Equal(t, a[i].Cut, b[i].Cut, "event %d", i)
		assert.Equal(t, a[i].Links, b[i].Links, "event %d", i)
	}
	cut := map[Link]bool{}
	for _, e := range a {
		for _, l := range e.Links {
			assert.NotEqual(t, l.From, l.To)
			if e.Cut {
				assert.False(t, cut[l], "cut twice: %v", l)
				cut[l] = true
			} else {
				assert.True(t, cut[l], "restored without a cut: %v", l)
				delete(cut, l)
			}
		}
		assert.LessOrEqual(t, len(cut), 3)
	}
	assert.Empty(t, cut)
	assert.Contains(t, a[0].String(), "cut ")
}

// TestFlap_Bites runs traffic through a flapping link: bytes are held and
// still all arrive, in order.
func TestFlap_Bites(t *testing.T) {
	t.Parallel()
	p, _ := startProxy(t, 2, Config{})
	c := dialPeer(t, p, 0, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	var evs []FlapEvent
	var wg sync.WaitGroup
	wg.Go(func() {
		evs = Flap(ctx, p, rand.New(rand.NewPCG(1, 2)), FlapConfig{MinWait: 10 * time.Millisecond, MaxWait: 30 * time.Millisecond})
	})
	const n = 200
	var want bytes.Buffer
	for i := range n {
		want.Write([]byte{byte('a' + i%26), '0', '1', '2', '3', '4', '5', '6'})
	}
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 0, 8*n)
		tmp := make([]byte, 1024)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(buf) < 8*n {
			k, err := c.Read(tmp)
			buf = append(buf, tmp[:k]...)
			if err != nil {
				readErr <- err
				return
			}
		}
		if !bytes.Equal(buf, want.Bytes()) {
			readErr <- errors.New("bytes out of order")
			return
		}
		readErr <- nil
	}()
	for i := range n {
		_, err := c.Write(want.Bytes()[8*i : 8*i+8])
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond)
	}
	require.NoError(t, <-readErr)
	wg.Wait()
	assert.NotEmpty(t, evs)
	st := p.Stats()
	assert.Positive(t, st[Link{0, 1}].Held+st[Link{1, 0}].Held, "flapping held bytes")
}
