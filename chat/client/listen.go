package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// maxAckIDs is the most ids one ack carries (docs/wire.md section 7.1).
const maxAckIDs = 1000

// seenCap bounds the ids Listen remembers to suppress repeats. A repeat can
// only be a message pushed again after a failover because its ack did not
// land, that is one of the last few handled; the bound is generous.
const seenCap = 1 << 16

// DefaultOutageAfter is ListenConfig.OutageAfter's default: longer than a
// failover takes (a new primary serves within about a second), so that a
// failover is not reported as an outage.
const DefaultOutageAfter = 3 * time.Second

// ListenConfig makes Listen fit a long-lived caller, such as a terminal
// that shows messages as they arrive. The zero value is Listen's behaviour.
type ListenConfig struct {
	// Persist makes Listen ride out an outage of any length: it keeps
	// looking for a primary (the backoff grows to 1s) instead of giving up
	// after Config.FailoverTimeout. It still ends on a final error (the
	// account was deleted, say), on ctx and on Close.
	Persist bool
	// OutageAfter is how long Listen goes without a primary before it
	// calls OnOutage; 0 means DefaultOutageAfter.
	OutageAfter time.Duration
	// OnOutage, if set, is called once per outage, from Listen's
	// goroutine, when it has lasted OutageAfter, with why: an
	// *UnavailableError holding each replica's status. With Persist false
	// it is called too, if the outage lasts OutageAfter before the failover
	// timeout.
	OnOutage func(why *UnavailableError)
	// OnRecover, if set, is called once Listen is subscribed again after
	// an outage reported to OnOutage, with the new primary's address and
	// how long Listen was without one.
	OnRecover func(primary string, down time.Duration)
}

// Listen subscribes to the logged-in user's messages and calls fn for each,
// queued ones first, then each new one as it is committed. Once fn returns
// nil the message is acknowledged: it counts as delivered. An error from fn
// ends Listen with that error, and the message stays queued.
//
// Listen blocks until ctx is done (it then returns ctx's error), a
// non-retryable error, or Close (ErrClosed). It follows failover: it
// subscribes again on the new primary's connection, and drops the messages
// pushed again there that it already handed to fn, so fn sees each message
// once. fn is called from one goroutine at a time. Without a primary for
// Config.FailoverTimeout it gives up with ErrFailoverTimeout; see
// ListenWith to ride out any outage.
func (c *Client) Listen(ctx context.Context, fn func(wire.Message) error) error {
	return c.ListenWith(ctx, ListenConfig{}, fn)
}

// ListenWith is Listen tuned by lc: see ListenConfig.
func (c *Client) ListenWith(ctx context.Context, lc ListenConfig, fn func(wire.Message) error) error {
	c.mu.Lock()
	switch {
	case c.listening:
		c.mu.Unlock()
		return ErrAlreadyListening
	case c.creds == nil:
		c.mu.Unlock()
		return ErrNotLoggedIn
	}
	c.listening = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.listening = false
		c.mu.Unlock()
	}()
	if lc.OutageAfter <= 0 {
		lc.OutageAfter = DefaultOutageAfter
	}

	ctx, release := c.opContext(ctx)
	defer release()
	l := listener{c: c, fn: fn, seen: newIDSet(seenCap), persist: lc.Persist, ackBound: lc.OutageAfter}
	r := retrier{c: c}
	o := outage{lc: lc}
	for {
		var cn *conn
		var err error
		if lc.Persist {
			cn, err = c.subscribe(ctx)
		} else {
			actx, cancel := r.bound(ctx)
			cn, err = c.subscribe(actx)
			cancel()
		}
		if err == nil {
			r.reset()
			o.over(cn.addr)
			err = l.consume(ctx, cn)
		}
		var fe *stopError
		if errors.As(err, &fe) {
			return fe.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", wire.OpListen, ctxErr(ctx))
		}
		o.begin()
		if o.due() {
			o.report(c.unavailable(ctx, err))
		}
		if lc.Persist {
			if !retryable(err) && !errors.Is(err, ErrFailoverTimeout) {
				return finalError(wire.OpListen, err)
			}
			if err := r.pause(ctx); err != nil {
				return fmt.Errorf("%s: %w", wire.OpListen, err)
			}
			continue
		}
		if err := r.wait(ctx, wire.OpListen, err); err != nil {
			return err
		}
	}
}

// outage tracks one Listen's time without a primary, for ListenConfig's
// callbacks. Not safe for concurrent use: Listen's goroutine owns it.
type outage struct {
	lc ListenConfig
	// since is when the primary was lost; zero while subscribed.
	since time.Time
	// reported is true once OnOutage was called for this outage.
	reported bool
}

func (o *outage) begin() {
	if o.since.IsZero() {
		o.since = time.Now()
	}
}

func (o *outage) due() bool {
	return !o.reported && o.lc.OnOutage != nil && time.Since(o.since) >= o.lc.OutageAfter
}

func (o *outage) report(why *UnavailableError) {
	o.reported = true
	o.lc.OnOutage(why)
}

// over ends the outage, if any, on subscribing to primary.
func (o *outage) over(primary string) {
	if o.reported && o.lc.OnRecover != nil {
		o.lc.OnRecover(primary, time.Since(o.since))
	}
	o.since, o.reported = time.Time{}, false
}

// subscribe sends listen on the primary's connection and returns it.
func (c *Client) subscribe(ctx context.Context) (*conn, error) {
	cn, err := c.connection(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.requestOn(ctx, cn, wire.OpListen, wire.ListenRequest{}); err != nil {
		return nil, err
	}
	c.logger.Debug("listening", "addr", cn.addr)
	return cn, nil
}

// requestOn sends a request that changes nothing (ping, listen) on cn alone,
// dropping cn if it fails in a way that calls for another connection.
func (c *Client) requestOn(ctx context.Context, cn *conn, op string, req any) error {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	_, err := cn.roundTrip(actx, op, 0, req)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctxErr(ctx)
	case actx.Err() != nil:
		c.drop(cn)
		return &connError{addr: cn.addr, err: fmt.Errorf("no answer to %s within %v", op, c.cfg.RequestTimeout)}
	case retryable(err):
		c.drop(cn)
	}
	return err
}

// stopError carries a final error (the callback's, or a failed ack's) out
// of consume, so that Listen returns it as it is instead of retrying.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// listener is the state of one Listen call.
type listener struct {
	c    *Client
	fn   func(wire.Message) error
	seen *idSet // ids handed to fn
	// persist: an ack that finds no primary is not final (see
	// ListenConfig.Persist), and is given up after ackBound rather than the
	// failover timeout, so that an outage is noticed (and reported) in
	// time; the messages stay queued and are pushed again, and seen keeps
	// them from reaching fn twice. Acks are idempotent, so giving up on one
	// is safe.
	persist  bool
	ackBound time.Duration
}

// consume hands cn's pushed messages to fn and acks them until cn breaks
// (a *connError, to retry) or another error.
func (l *listener) consume(ctx context.Context, cn *conn) error {
	keepAlive := time.NewTicker(l.c.cfg.KeepAlive)
	defer keepAlive.Stop()
	for {
		if batch := cn.takePushes(); len(batch) > 0 {
			if err := l.handle(ctx, batch); err != nil {
				return err
			}
			continue
		}
		select {
		case <-cn.pushReady:
		case <-cn.done:
			if batch := cn.takePushes(); len(batch) > 0 {
				// Handle what arrived before the end; the acks go out on
				// the next connection.
				if err := l.handle(ctx, batch); err != nil {
					return err
				}
			}
			return cn.failure()
		case <-keepAlive.C:
			if err := l.c.requestOn(ctx, cn, wire.OpPing, wire.PingRequest{}); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctxErr(ctx)
		}
	}
}

// handle calls fn for each message not seen before, then acks the batch
// (repeats included: their earlier ack may not have landed).
func (l *listener) handle(ctx context.Context, batch []wire.Message) error {
	ids := make([]uint64, 0, len(batch))
	var fnErr error
	for _, m := range batch {
		if !l.seen.has(m.ID) {
			if err := l.fn(m); err != nil {
				fnErr = &stopError{err: err}
				break
			}
			l.seen.add(m.ID)
		}
		ids = append(ids, m.ID)
	}
	if err := l.ack(ctx, ids); err != nil {
		return err
	}
	return fnErr
}

// ack marks ids delivered, retrying through failover like any mutating
// request.
func (l *listener) ack(ctx context.Context, ids []uint64) error {
	for len(ids) > 0 {
		n := min(len(ids), maxAckIDs)
		actx, cancel := ctx, context.CancelFunc(func() {})
		if l.persist {
			actx, cancel = context.WithTimeout(ctx, l.ackBound)
		}
		err := l.c.do(actx, wire.OpAck, wire.AckRequest{IDs: ids[:n]}, nil)
		cancel()
		if l.persist && err != nil && ctx.Err() == nil && (isContextErr(err) || errors.Is(err, ErrFailoverTimeout)) {
			return &connError{addr: "cluster", err: fmt.Errorf("no answer to ack within %v", l.ackBound)}
		}
		var e *Error
		if errors.As(err, &e) && e.Code == wire.CodeNotFound {
			// Deleted meanwhile (by another session of the user): there is
			// nothing left to deliver.
			l.c.logger.Debug("ack of deleted message", "ids", ids[:n])
			err = nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctxErr(ctx)
			}
			return &stopError{err: err}
		}
		ids = ids[n:]
	}
	return nil
}

// idSet is a set of ids that forgets the oldest beyond its capacity.
type idSet struct {
	ids   map[uint64]struct{}
	order []uint64 // ring of the ids in insertion order
	next  int      // position of the oldest id in order, once it is full
	max   int
}

func newIDSet(max int) *idSet {
	return &idSet{ids: make(map[uint64]struct{}), max: max}
}

func (s *idSet) has(id uint64) bool {
	_, ok := s.ids[id]
	return ok
}

func (s *idSet) add(id uint64) {
	if s.has(id) {
		return
	}
	if len(s.order) < s.max {
		s.order = append(s.order, id)
	} else {
		delete(s.ids, s.order[s.next])
		s.order[s.next] = id
		s.next = (s.next + 1) % s.max
	}
	s.ids[id] = struct{}{}
}
