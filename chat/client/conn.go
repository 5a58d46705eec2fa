package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// errConnClosed is why a connection the client closed itself stopped.
var errConnClosed = errors.New("client: connection closed")

// conn is one connection to a replica, after a successful hello. Its reader
// goroutine (readLoop) matches responses to the requests waiting for them and
// queues pushed messages; any number of goroutines may call roundTrip.
type conn struct {
	wc    *wire.Conn
	addr  string
	hello wire.HelloOK
	// writeTimeout bounds each frame write, so that a server that stopped
	// reading cannot hold a request forever.
	writeTimeout time.Duration

	// lastID is the last request id used; the handshake used 1.
	lastID atomic.Uint64

	mu sync.Mutex
	// pending maps request ids to their waiters. Invariant: nil once the
	// reader has stopped, so no waiter is added that nobody would wake.
	pending map[uint64]chan wire.Frame
	// pushes are pushed messages not yet taken by the listener, in order.
	pushes []wire.Message
	// err is why the connection stopped; set before done is closed.
	err error

	pushReady chan struct{} // capacity 1: signalled when pushes grows
	done      chan struct{} // closed when the reader goroutine returns
}

// dialConn connects to addr and says hello; it does not start the reader.
func dialConn(ctx context.Context, addr string, cfg *Config) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &connError{addr: addr, err: err}
	}
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				tc.ServerName = host
			}
		}
		nc = tls.Client(nc, tc)
	}
	wc := wire.NewConn(nc, cfg.MaxFrame)
	ok, err := wc.Handshake(ctx, wire.Hello{Role: wire.RoleClient, ClientID: cfg.ClientID, Software: software})
	if err != nil {
		_ = wc.Close()
		var we *wire.Error
		if errors.As(err, &we) {
			return nil, we
		}
		return nil, &connError{addr: addr, err: err}
	}
	return &conn{
		wc:           wc,
		addr:         addr,
		hello:        ok,
		writeTimeout: cfg.RequestTimeout,
		pending:      make(map[uint64]chan wire.Frame),
		pushReady:    make(chan struct{}, 1),
		done:         make(chan struct{}),
	}, nil
}

// readLoop reads frames until the connection fails or is closed.
func (c *conn) readLoop() {
	defer close(c.done)
	for {
		f, err := c.wc.ReadFrame()
		if err != nil {
			c.stop(err)
			return
		}
		switch f.Kind {
		case wire.KindResponse:
			if f.ID == 0 {
				// The server could not read one of our frames and closes.
				if f.Error != nil {
					err = f.Error
				} else {
					err = errors.New("response without id")
				}
				c.stop(fmt.Errorf("server refused a frame: %w", err))
				return
			}
			c.mu.Lock()
			ch := c.pending[f.ID]
			delete(c.pending, f.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- f // buffered: never blocks
			}
		case wire.KindPush:
			if f.Op != wire.PushMessage {
				continue // docs/wire.md: ignore push ops we do not know
			}
			var m wire.Message
			if err := wire.Decode(f.Body, &m); err != nil {
				c.stop(fmt.Errorf("decode pushed message: %w", err))
				return
			}
			c.mu.Lock()
			c.pushes = append(c.pushes, m)
			c.mu.Unlock()
			select {
			case c.pushReady <- struct{}{}:
			default:
			}
		default:
			c.stop(fmt.Errorf("unexpected %s frame from the server", f.Kind))
			return
		}
	}
}

// stop records why the connection ended, wakes its waiters and closes it.
func (c *conn) stop(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.pending = nil
	c.mu.Unlock()
	_ = c.wc.Close()
}

// close closes the connection; the reader then stops.
func (c *conn) close() { c.stop(errConnClosed) }

// broken reports whether the connection has stopped.
func (c *conn) broken() bool {
	select {
	case <-c.done:
		return true
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending == nil
}

// failure returns the connection's error as a *connError.
func (c *conn) failure() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err == nil {
		err = errConnClosed
	}
	return &connError{addr: c.addr, err: err}
}

// takePushes returns and forgets the queued pushed messages.
func (c *conn) takePushes() []wire.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pushes
	c.pushes = nil
	return p
}

// roundTrip sends one request and waits for its response. A response that
// carries an error is returned as its *wire.Error; a broken connection as a
// *connError; ctx ending as ctx's error. The caller decides about retries.
func (c *conn) roundTrip(ctx context.Context, op string, seq uint64, body any) (wire.Frame, error) {
	id := c.lastID.Add(1)
	req, err := wire.NewRequest(id, op, seq, body)
	if err != nil {
		return wire.Frame{}, fmt.Errorf("build %s request: %w", op, err)
	}
	ch := make(chan wire.Frame, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return wire.Frame{}, c.failure()
	}
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}

	// Concurrent writers each push the deadline forward; all use the same
	// timeout, so none is cut short by another.
	_ = c.wc.NetConn().SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if err := c.wc.WriteFrame(req); err != nil {
		forget()
		var fse *wire.FrameSizeError
		var me *wire.MalformedError
		if errors.As(err, &fse) || errors.As(err, &me) {
			// Not written: the connection is fine, the request is not.
			return wire.Frame{}, fmt.Errorf("send %s request: %w", op, err)
		}
		c.stop(err)
		return wire.Frame{}, c.failure()
	}

	select {
	case resp := <-ch:
		if resp.Error != nil {
			return resp, resp.Error
		}
		return resp, nil
	case <-c.done:
		select {
		case resp := <-ch: // answered just before the connection ended
			if resp.Error != nil {
				return resp, resp.Error
			}
			return resp, nil
		default:
		}
		return wire.Frame{}, c.failure()
	case <-ctx.Done():
		forget()
		return wire.Frame{}, ctx.Err()
	}
}
