package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// Backoff between rounds of looking for the primary.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = time.Second
)

// credentials are kept in memory so that the client can log in again after
// a failover: the login belongs to the connection (docs/wire.md section 5).
type credentials struct {
	user, password string
}

// Client is a connection to a replichat cluster that follows its primary.
// It is safe for concurrent use. See the package documentation.
type Client struct {
	cfg    Config
	logger *slog.Logger
	// mutations holds a token per mutating request in flight, bounding them
	// to maxUnansweredMutations.
	mutations chan struct{}
	// readers tracks the reader goroutine of every connection, so that
	// Close can wait for them. Add happens only under mu with closed false.
	readers sync.WaitGroup

	mu     sync.Mutex
	closed bool
	// conn is the connection to the primary; nil when there is none yet.
	conn *conn
	// dialing is non-nil while one goroutine looks for the primary; it is
	// closed when that search ends, with its error left in dialErr.
	dialing chan struct{}
	dialErr error
	// hint is an address to try first: the last not_primary hint.
	hint string
	// seq is the last Seq taken. Invariant: every mutating request sent has
	// a distinct Seq in 1..seq.
	seq   uint64
	creds *credentials // nil when not logged in
	// listening is true while Listen runs.
	listening bool
	// rng draws backoff jitter; seeded per client so that clients that lost
	// the same primary do not retry in lockstep.
	rng *mrand.Rand
	// ops cancels the requests in flight when the Client is closed.
	ops    map[uint64]context.CancelCauseFunc
	lastOp uint64
}

// New returns a Client for cfg without connecting: the first request finds
// the primary. Status works without a primary.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	return &Client{
		cfg:       cfg,
		logger:    cfg.Logger.With("client", cfg.ClientID),
		mutations: make(chan struct{}, maxUnansweredMutations),
		rng:       mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		ops:       make(map[uint64]context.CancelCauseFunc),
	}, nil
}

// Dial returns a Client connected to the primary of the cluster, looking for
// it for up to cfg.FailoverTimeout.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("dial: %w", err)
	}
	return c, nil
}

// ClientID returns the id this client says hello with.
func (c *Client) ClientID() string { return c.cfg.ClientID }

// Primary returns the address of the primary the client is connected to,
// or "" when it has no connection.
func (c *Client) Primary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.conn.broken() {
		return ""
	}
	return c.conn.addr
}

// Close closes the connection, makes requests in flight and every later
// call return ErrClosed, and waits for the client's goroutines to stop.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.readers.Wait()
		return nil
	}
	c.closed = true
	cn := c.conn
	c.conn = nil
	for _, cancel := range c.ops {
		cancel(ErrClosed)
	}
	c.mu.Unlock()
	if cn != nil {
		cn.close()
	}
	c.readers.Wait()
	return nil
}

// opContext returns ctx, also cancelled (with cause ErrClosed) by Close,
// and a function that releases it.
func (c *Client) opContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cancel(ErrClosed)
		return ctx, func() {}
	}
	c.lastOp++
	id := c.lastOp
	c.ops[id] = cancel
	return ctx, func() {
		c.mu.Lock()
		delete(c.ops, id)
		c.mu.Unlock()
		cancel(nil)
	}
}

// ctxErr is the error to return once ctx has ended: ErrClosed if Close
// ended it, else ctx's error.
func ctxErr(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrClosed) {
		return ErrClosed
	}
	return ctx.Err()
}

// start runs cn's reader, unless the client is closed.
func (c *Client) start(cn *conn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.close()
		return ErrClosed
	}
	c.readers.Go(cn.readLoop)
	return nil
}

// drop forgets cn as the primary's connection and closes it.
func (c *Client) drop(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.mu.Unlock()
	cn.close()
}

// setHint records where the primary is believed to be.
func (c *Client) setHint(addr string) {
	c.mu.Lock()
	c.hint = addr
	c.mu.Unlock()
}

// nextSeq takes the next sequence number for a mutating request.
func (c *Client) nextSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.seq
}

// connection returns the connection to the primary, looking for the primary
// (one round over the servers) if there is none. Concurrent callers share
// one search.
func (c *Client) connection(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if cn := c.conn; cn != nil {
			if !cn.broken() {
				c.mu.Unlock()
				return cn, nil
			}
			c.conn = nil
		}
		if c.dialing == nil {
			break
		}
		ch := c.dialing
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctxErr(ctx)
		}
		c.mu.Lock()
		// The searcher's failure is ours too (and goes through our own
		// backoff), unless it was only its caller giving up.
		if err := c.dialErr; c.conn == nil && err != nil && !isContextErr(err) {
			c.mu.Unlock()
			return nil, err
		}
	}
	ch := make(chan struct{})
	c.dialing = ch
	hint, creds := c.hint, c.creds
	c.mu.Unlock()

	cn, err := c.findPrimary(ctx, hint)
	if err == nil {
		if err = c.logIn(ctx, cn, creds); err != nil {
			cn.close()
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialing = nil
	c.dialErr = err
	close(ch)
	var re *reloginError
	if errors.As(err, &re) && c.creds == creds {
		// The login is no longer valid (the account was deleted, or its
		// password changed): later requests go out logged out, and get
		// not_logged_in, rather than failing to log in forever.
		c.creds = nil
	}
	if err != nil {
		return nil, err
	}
	if c.closed {
		cn.close()
		return nil, ErrClosed
	}
	c.conn = cn
	c.hint = ""
	c.logger.Info("connected to primary", "addr", cn.addr, "server", cn.hello.ServerID, "epoch", cn.hello.Epoch)
	return cn, nil
}

// findPrimary tries hint, then every server in order, following the primary
// addresses that backups name, and returns a started connection to the
// first replica that says it is primary.
func (c *Client) findPrimary(ctx context.Context, hint string) (*conn, error) {
	queue := make([]string, 0, len(c.cfg.Servers)+1)
	if hint != "" {
		queue = append(queue, hint)
	}
	queue = append(queue, c.cfg.Servers...)
	tried := make(map[string]bool, len(queue))
	var last error
	for len(queue) > 0 {
		addr := queue[0]
		queue = queue[1:]
		if tried[addr] {
			continue
		}
		tried[addr] = true
		cn, err := dialConn(ctx, addr, &c.cfg)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctxErr(ctx)
			}
			c.logger.Debug("server unreachable", "addr", addr, "err", err)
			var we *wire.Error
			if errors.As(err, &we) && we.Code == wire.CodeNotPrimary && we.Primary != "" {
				queue = append([]string{we.Primary}, queue...)
			}
			last = err
			continue
		}
		if cn.hello.Role == wire.RolePrimary {
			if err := c.start(cn); err != nil {
				return nil, err
			}
			return cn, nil
		}
		cn.wc.Close()
		c.logger.Debug("server is not primary", "addr", addr, "role", cn.hello.Role, "primary", cn.hello.Primary)
		last = &wire.Error{Code: wire.CodeNotPrimary, Message: fmt.Sprintf("%s is %s", addr, cn.hello.Role), Primary: cn.hello.Primary}
		if p := cn.hello.Primary; p != "" && !tried[p] {
			queue = append([]string{p}, queue...)
		}
	}
	var we *wire.Error
	if errors.As(last, &we) && !retryableCode(we.Code) {
		return nil, fmt.Errorf("find primary: %w", last)
	}
	return nil, &connError{addr: "cluster", err: fmt.Errorf("no primary among %d servers: %w", len(tried), last)}
}

// logIn logs cn in again with creds, if any.
func (c *Client) logIn(ctx context.Context, cn *conn, creds *credentials) error {
	if creds == nil {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	_, err := cn.roundTrip(actx, wire.OpLogin, 0, wire.LoginRequest{User: creds.user, Password: creds.password})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctxErr(ctx)
	}
	if actx.Err() != nil {
		return &connError{addr: cn.addr, err: fmt.Errorf("no answer to login within %v", c.cfg.RequestTimeout)}
	}
	var we *wire.Error
	if errors.As(err, &we) && !retryableCode(we.Code) {
		return &reloginError{user: creds.user, err: fromWire(we)}
	}
	return err
}

// reloginError is a final failure to log in again after a reconnect, for
// instance because the account was deleted meanwhile.
type reloginError struct {
	user string
	err  *Error
}

func (e *reloginError) Error() string { return fmt.Sprintf("log in again as %q: %v", e.user, e.err) }

func (e *reloginError) Unwrap() error { return e.err }

// retryableCode reports whether a server error is worth trying again,
// possibly elsewhere: the retryable codes, plus a full server (another
// replica, or a later attempt, may have room).
func retryableCode(code wire.Code) bool {
	return code.Retryable() || code == wire.CodeTooManyConnections
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// do sends one request and decodes its response into resp (if not nil),
// retrying through failover. A mutating request keeps its Seq on every
// attempt, which is what makes it exactly-once.
func (c *Client) do(ctx context.Context, op string, req, resp any) error {
	ctx, release := c.opContext(ctx)
	defer release()
	var seq uint64
	if wire.Mutating(op) {
		select {
		case c.mutations <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", op, ctxErr(ctx))
		}
		defer func() { <-c.mutations }()
		seq = c.nextSeq()
	}
	r := retrier{c: c}
	for {
		actx, cancel := r.bound(ctx)
		err := c.attempt(actx, op, seq, req, resp)
		cancel()
		if err == nil {
			return nil
		}
		if err := r.wait(ctx, op, err); err != nil {
			return err
		}
	}
}

// attempt sends the request once, on the primary's connection.
func (c *Client) attempt(ctx context.Context, op string, seq uint64, req, resp any) error {
	cn, err := c.connection(ctx)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	f, err := cn.roundTrip(actx, op, seq, req)
	if err != nil {
		if ctx.Err() != nil {
			return ctxErr(ctx)
		}
		if actx.Err() != nil {
			// No answer: assume the connection is dead (a primary that is
			// alive answers, if only with timeout).
			c.drop(cn)
			return &connError{addr: cn.addr, err: fmt.Errorf("no answer to %s within %v", op, c.cfg.RequestTimeout)}
		}
		var ce *connError
		var we *wire.Error
		switch {
		case errors.As(err, &ce):
			c.drop(cn)
		case errors.As(err, &we) && retryableCode(we.Code):
			c.logger.Debug("retryable error", "op", op, "seq", seq, "addr", cn.addr, "code", we.Code, "primary", we.Primary)
			c.drop(cn)
			if we.Primary != "" {
				c.setHint(we.Primary)
			}
		}
		return err
	}
	if resp != nil {
		if err := wire.Decode(f.Body, resp); err != nil {
			return fmt.Errorf("decode %s response: %w", op, err)
		}
	}
	return nil
}

// retrier paces the attempts of one request: it decides whether a failure
// is worth another attempt, and waits a jittered backoff before it, for up
// to FailoverTimeout after the first failure.
type retrier struct {
	c        *Client
	deadline time.Time // zero until the first failure
	delay    time.Duration
	last     error // the last retryable failure
}

// bound returns ctx limited by the failover deadline, once there is one.
func (r *retrier) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, r.deadline)
}

// reset forgets past failures, after a success.
func (r *retrier) reset() {
	r.deadline = time.Time{}
	r.delay = 0
	r.last = nil
}

// wait returns nil after the backoff if err is worth another attempt, and
// otherwise the error to give the caller.
func (r *retrier) wait(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctxErr(ctx))
	}
	if isContextErr(err) && !r.deadline.IsZero() && !time.Now().Before(r.deadline) {
		return r.expired(ctx, op)
	}
	if !retryable(err) {
		return finalError(op, err)
	}
	now := time.Now()
	if r.deadline.IsZero() {
		r.deadline = now.Add(r.c.cfg.FailoverTimeout)
		r.delay = backoffMin
	}
	r.last = err
	if !now.Before(r.deadline) {
		return r.expired(ctx, op)
	}
	r.c.logger.Debug("retrying", "op", op, "err", err, "backoff", r.delay)
	d := min(r.c.jitter(r.delay), time.Until(r.deadline))
	r.delay = min(2*r.delay, backoffMax)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", op, ctxErr(ctx))
	}
}

// pause waits the next jittered backoff, without a deadline: the pacing of
// a caller that never gives up (ListenConfig.Persist). It returns ctx's
// error if ctx ends first.
func (r *retrier) pause(ctx context.Context) error {
	if r.delay == 0 {
		r.delay = backoffMin
	}
	t := time.NewTimer(r.c.jitter(r.delay))
	defer t.Stop()
	r.delay = min(2*r.delay, backoffMax)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// expired is the error once the failover deadline has passed: it wraps
// ErrFailoverTimeout and an *UnavailableError that says why, in the
// replicas' words (a survey of their status), rather than the last
// connection's "connection refused". The *UnavailableError wraps the last
// failure in turn.
func (r *retrier) expired(ctx context.Context, op string) error {
	last := r.last
	var we *wire.Error
	if errors.As(last, &we) {
		last = fromWire(we)
	}
	why := r.c.unavailable(ctx, last)
	return fmt.Errorf("%s: %w after %v: %w", op, ErrFailoverTimeout, r.c.cfg.FailoverTimeout, why)
}

// jitter returns a random duration in [d/2, d).
func (c *Client) jitter(d time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return d/2 + time.Duration(c.rng.Int64N(int64(d/2)+1))
}

// retryable reports whether a request that failed with err may succeed on
// another attempt.
func retryable(err error) bool {
	var ce *connError
	var we *wire.Error
	var re *reloginError
	switch {
	case errors.Is(err, ErrClosed), errors.As(err, &re):
		return false
	case errors.As(err, &ce):
		return true
	case errors.As(err, &we):
		return retryableCode(we.Code)
	}
	return false
}

// finalError is the error returned for a request that will not be retried:
// a server's answer becomes an *Error.
func finalError(op string, err error) error {
	var we *wire.Error
	var ce *Error
	if !errors.As(err, &ce) && errors.As(err, &we) {
		err = fromWire(we)
	}
	return fmt.Errorf("%s: %w", op, err)
}
