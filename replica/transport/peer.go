package transport

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// writeBufferSize is the outbound coalescing buffer. Messages at least this
// large bypass it.
const writeBufferSize = 64 << 10

// maxBatch bounds the messages written between two flushes.
const maxBatch = 256

// peer is the link with one other replica.
type peer struct {
	id    NodeID
	addr  string
	queue chan []byte // outbound; Send fills it, the writer goroutine drains it
	// wake cuts the writer's reconnect delay short (capacity 1): the peer
	// just connected to us, so it is up now. Without it, a replica that was
	// down for a while waited up to ReconnectMax after its restart before
	// hearing anything (the backoff had grown while it was down), which
	// delayed its catch-up by as much.
	wake chan struct{}

	connected           atomic.Bool // outbound connection up
	sentMsgs, sentBytes atomic.Uint64
	recvMsgs, recvBytes atomic.Uint64
	dropped             atomic.Uint64

	mu        sync.Mutex
	lastErr   error     // guarded by mu
	lastErrAt time.Time // guarded by mu
	inbound   net.Conn  // guarded by mu; the authenticated inbound connection being served, or nil
}

func newPeer(id NodeID, addr string, queueLen int) *peer {
	return &peer{id: id, addr: addr, queue: make(chan []byte, queueLen), wake: make(chan struct{}, 1)}
}

func (p *peer) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr, p.lastErrAt = err, time.Now()
}

// setInbound records conn as the peer's inbound connection and returns the
// one it replaces, if any. A peer has at most one: a new connection means
// the peer restarted or redialled, and the old one is dead or soon will be;
// closing it keeps half-open connections from piling up, and keeps a late
// message on the old connection from overtaking newer ones.
func (p *peer) setInbound(conn net.Conn) (old net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, p.inbound = p.inbound, conn
	return old
}

// wakeWriter tells the writer goroutine that the peer is up (see wake).
func (p *peer) wakeWriter() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// clearInbound forgets conn; it reports whether conn had been replaced.
func (p *peer) clearInbound(conn net.Conn) (superseded bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inbound != conn {
		return true
	}
	p.inbound = nil
	return false
}

func (p *peer) status() PeerStatus {
	p.mu.Lock()
	lastErr, lastErrAt, inbound := p.lastErr, p.lastErrAt, p.inbound != nil
	p.mu.Unlock()
	return PeerStatus{
		ID:           p.id,
		Addr:         p.addr,
		Connected:    p.connected.Load(),
		Inbound:      inbound,
		LastError:    lastErr,
		LastErrorAt:  lastErrAt,
		Queued:       len(p.queue),
		SentMessages: p.sentMsgs.Load(),
		SentBytes:    p.sentBytes.Load(),
		RecvMessages: p.recvMsgs.Load(),
		RecvBytes:    p.recvBytes.Load(),
		Dropped:      p.dropped.Load(),
	}
}

// runPeer is the writer goroutine of one peer: it connects, writes the
// queue, and reconnects when the connection breaks, until ctx is done.
func (t *Transport) runPeer(ctx context.Context, p *peer) {
	log := t.log.With("peer", p.id, "addr", p.addr)
	// Jitter only spreads reconnects; it needs no determinism, but it must
	// not share a global source.
	var seed [16]byte
	crand.Read(seed[:])
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	failures := 0 // consecutive failed or short-lived connections
	for {
		if failures > 0 {
			delay := backoff(t.cfg.ReconnectMin, t.cfg.ReconnectMax, failures, rng)
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			case <-p.wake:
				timer.Stop()
			}
		}
		conn, err := t.dial(ctx, p.id, p.addr)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.setErr(err)
			if failures == 0 || errors.Is(err, ErrAuth) || errors.Is(err, ErrRefused) {
				log.Warn("connect to peer", "err", err)
			} else {
				log.Debug("connect to peer", "err", err, "attempt", failures+1)
			}
			failures++
			continue
		}
		log.Info("connected to peer")
		// A wake-up from before this connection is stale: if it breaks,
		// back off as usual.
		select {
		case <-p.wake:
		default:
		}
		start := time.Now()
		p.connected.Store(true)
		err = t.writeLoop(ctx, p, conn)
		p.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		p.setErr(err)
		log.Info("connection to peer broke", "err", err)
		if time.Since(start) >= t.cfg.ReconnectMax {
			failures = 0
		} else {
			failures++
		}
	}
}

// backoff returns the delay before reconnect attempt number failures (>= 1):
// min doubled per failure, capped at max, then jittered to [d/2, d) so that
// replicas restarted together do not redial in lockstep.
func backoff(min, max time.Duration, failures int, rng *rand.Rand) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	d = minDuration(d, max)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(rng.Int64N(int64(d-half)))
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// dial connects to a peer and runs the dialer's handshake.
func (t *Transport) dial(ctx context.Context, to NodeID, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	if err := t.hs.dial(conn, conn, to); err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return conn, nil
}

// writeLoop writes the peer's queue to conn until a write fails, the peer
// closes conn or ctx is done; it closes conn before returning. Messages are
// buffered and flushed when the queue is momentarily empty, so that a burst
// costs few syscalls while a lone message leaves at once.
func (t *Transport) writeLoop(ctx context.Context, p *peer, conn net.Conn) error {
	// The acceptor sends nothing after the handshake, so a read returns
	// only when the connection ends (or carries a late error frame). This
	// reader notices a peer that went away while we had nothing to send, so
	// that we redial at once instead of losing the next message to a dead
	// connection.
	peerGone := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { peerGone <- watchClose(conn) })
	defer wg.Wait()
	defer conn.Close() // runs before wg.Wait: unblocks the watcher

	bw := bufio.NewWriterSize(conn, writeBufferSize)
	for {
		var msg []byte
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-peerGone:
			return err
		case msg = <-p.queue:
		}
		var n, nbytes uint64
		deadlineSet := time.Now()
		if err := conn.SetWriteDeadline(deadlineSet.Add(t.cfg.WriteTimeout)); err != nil {
			return fmt.Errorf("set write deadline: %w", err)
		}
		for {
			if err := writeFrame(bw, msg); err != nil {
				return fmt.Errorf("write message: %w", err)
			}
			n++
			nbytes += uint64(len(msg))
			// Under a sustained burst the queue never empties and bufio
			// flushes by itself; keep the deadline about progress, not
			// about the length of the burst.
			if now := time.Now(); now.Sub(deadlineSet) > t.cfg.WriteTimeout/4 {
				deadlineSet = now
				if err := conn.SetWriteDeadline(now.Add(t.cfg.WriteTimeout)); err != nil {
					return fmt.Errorf("set write deadline: %w", err)
				}
			}
			if n == maxBatch {
				break // so that stopping and a peer gone are noticed under load
			}
			var more bool // the queue is never closed: false means empty
			select {
			case msg, more = <-p.queue:
			default:
			}
			if !more {
				break
			}
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("flush messages: %w", err)
		}
		p.sentMsgs.Add(n)
		p.sentBytes.Add(nbytes)
	}
}

// watchClose reads from an outbound connection until it ends, and says
// why.
func watchClose(conn net.Conn) error {
	b, err := readFrame(conn, maxHandshakeFrame)
	switch {
	case err == nil:
		if rerr := refusal(b); rerr != nil {
			return rerr
		}
		return fmt.Errorf("%w: unexpected frame %s from acceptor", ErrMalformed, describe(b))
	case errors.Is(err, io.EOF):
		return fmt.Errorf("closed by peer: %w", err)
	default:
		return fmt.Errorf("read from peer: %w", err)
	}
}
