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

// Listen subscribes to the logged-in user's messages and calls fn for each,
// queued ones first, then each new one as it is committed. Once fn returns
// nil the message is acknowledged: it counts as delivered. An error from fn
// ends Listen with that error, and the message stays queued.
//
// Listen blocks until ctx is done (it then returns ctx's error), a
// non-retryable error, or Close (ErrClosed). It follows failover: it
// subscribes again on the new primary's connection, and drops the messages
// pushed again there that it already handed to fn, so fn sees each message
// once. fn is called from one goroutine at a time.
func (c *Client) Listen(ctx context.Context, fn func(wire.Message) error) error {
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

	ctx, release := c.opContext(ctx)
	defer release()
	l := listener{c: c, fn: fn, seen: newIDSet(seenCap)}
	r := retrier{c: c}
	for {
		actx, cancel := r.bound(ctx)
		cn, err := c.subscribe(actx)
		cancel()
		if err == nil {
			r.reset()
			err = l.consume(ctx, cn)
		}
		var fe *stopError
		if errors.As(err, &fe) {
			return fe.err
		}
		if err := r.wait(ctx, wire.OpListen, err); err != nil {
			return err
		}
	}
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
		err := l.c.do(ctx, wire.OpAck, wire.AckRequest{IDs: ids[:n]}, nil)
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
