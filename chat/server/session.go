package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// session is one client connection. Requests are handled in order on the
// connection's goroutine; a pusher goroutine may write concurrently (Conn
// serializes writes).
type session struct {
	srv      *Server
	conn     *wire.Conn
	nc       net.Conn
	log      *slog.Logger
	clientID string

	// user is the logged-in account; zero uid when logged out. Only the
	// request goroutine writes it; the pusher reads its own copy.
	uid  uint64
	name string

	// pusher is the running push loop, if listening.
	pusher *pusher
	// curOp is the op being handled, for the AfterCommit failpoint.
	curOp string
	// ctx is the connection's context: it outlives each request, so the
	// pusher runs under it, not under a request's.
	ctx context.Context
}

// serveClient runs the hello exchange and then the request loop.
func (s *Server) serveClient(ctx context.Context, nc net.Conn, log *slog.Logger) {
	conn := wire.NewConn(nc, s.cfg.MaxFrame)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	req, hello, err := conn.AcceptHello(hctx)
	cancel()
	if err != nil {
		log.Debug("handshake refused", "err", err)
		return
	}
	if hello.Role != wire.RoleClient {
		s.write(nc, conn, wire.NewErrorResponse(req, wire.Errorf(wire.CodeBadHandshake,
			"role %q is not served here (replica peers use their own preamble)", hello.Role)))
		return
	}
	st := s.repl.Status()
	ok, err := wire.NewResponse(req, wire.HelloOK{
		Version:  wire.Version,
		ServerID: st.ID,
		Role:     st.Role,
		Epoch:    st.Epoch,
		Primary:  st.Primary,
		MaxFrame: s.cfg.MaxFrame,
	})
	if err != nil || !s.write(nc, conn, ok) {
		return
	}
	sess := &session{srv: s, conn: conn, nc: nc, clientID: hello.ClientID, ctx: ctx,
		log: log.With("client", hello.ClientID)}
	defer sess.stopListening()
	sess.loop(ctx)
}

// write sends one frame under the write timeout, reporting success.
func (s *Server) write(nc net.Conn, conn *wire.Conn, f wire.Frame) bool {
	nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := conn.WriteFrame(f); err != nil {
		var werr *wire.FrameSizeError
		if errors.As(err, &werr) && f.Kind == wire.KindResponse {
			// The answer is too big for a frame; the connection is still
			// usable, so say so instead.
			return s.write(nc, conn, wire.NewErrorResponse(f, wire.Errorf(wire.CodeFrameTooLarge,
				"the response exceeds the %d-byte frame limit; ask for fewer items", conn.MaxFrame())))
		}
		return false
	}
	return true
}

func (sess *session) loop(ctx context.Context) {
	srv := sess.srv
	for {
		sess.nc.SetReadDeadline(time.Now().Add(srv.cfg.IdleTimeout))
		req, err := sess.conn.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				// Say why before closing, when the stream allows it (a frame
				// over the limit or garbage): the client gets a typed error.
				if werr := wire.ErrorOf(err); werr != nil && !errors.Is(err, net.ErrClosed) {
					sess.log.Debug("closing connection", "err", err)
					var big *wire.FrameSizeError
					if srv.write(sess.nc, sess.conn, wire.NewErrorResponse(wire.Frame{Kind: wire.KindRequest}, werr)) && errors.As(err, &big) {
						sess.drain(big.Size)
					}
				}
			}
			return
		}
		if req.Kind != wire.KindRequest {
			srv.write(sess.nc, sess.conn, wire.NewErrorResponse(req,
				wire.Errorf(wire.CodeBadRequest, "expected a request frame, got kind %d", req.Kind)))
			continue
		}
		start := time.Now()
		resp := sess.handle(ctx, req)
		srv.observeRequest(resp, time.Since(start))
		if !srv.write(sess.nc, sess.conn, resp) {
			return
		}
	}
}

// Bounds of drain.
const (
	drainTimeout = time.Second
	drainBytes   = 8 << 20
)

// drain reads and discards the body of a frame over the limit (up to size
// bytes, drainBytes at most, for drainTimeout at most) before the
// connection is closed after the error response. Closing a socket with
// unread data makes the kernel reset the connection, and a client still
// writing the frame would get the reset instead of the error.
func (sess *session) drain(size uint64) {
	if err := sess.nc.SetReadDeadline(time.Now().Add(drainTimeout)); err != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, sess.nc, int64(min(size, drainBytes)))
}

// handle answers one request, never failing the connection: every error is
// a typed error response.
func (sess *session) handle(ctx context.Context, req wire.Frame) wire.Frame {
	if werr := wire.CheckRequest(req); werr != nil {
		return wire.NewErrorResponse(req, werr)
	}
	ctx, cancel := context.WithTimeout(ctx, sess.srv.cfg.RequestTimeout)
	defer cancel()
	body, err := sess.dispatch(ctx, req)
	if err != nil {
		return wire.NewErrorResponse(req, sess.srv.wireError(err))
	}
	resp, err := wire.NewResponse(req, body)
	if err != nil {
		sess.log.Error("encode response", "op", req.Op, "err", err)
		return wire.NewErrorResponse(req, wire.Errorf(wire.CodeInternal, "internal error"))
	}
	return resp
}

// listeners returns the pushers of uid's listening sessions.
func (s *Server) listeners(uid uint64) []*pusher {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*pusher, 0, len(s.listening[uid]))
	for p := range s.listening[uid] {
		out = append(out, p)
	}
	return out
}

// anyListening reports whether any session here is listening.
func (s *Server) anyListening() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.listening) > 0
}

// online reports whether uid has a listening session here.
func (s *Server) online(uid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.listening[uid]) > 0
}

// startListening makes the session's user present and starts its pusher.
// Only the request goroutine calls it.
func (sess *session) startListening() {
	if sess.pusher != nil {
		return
	}
	p := newPusher(sess, sess.uid)
	sess.pusher = p
	srv := sess.srv
	srv.mu.Lock()
	set := srv.listening[p.uid]
	if set == nil {
		set = make(map[*pusher]struct{})
		srv.listening[p.uid] = set
	}
	set[p] = struct{}{}
	srv.mu.Unlock()
	p.start(sess.ctx)
}

// stopListening ends the session's presence and its pusher; it returns once
// the pusher has exited. Only the request goroutine calls it.
func (sess *session) stopListening() {
	p := sess.pusher
	if p == nil {
		return
	}
	sess.pusher = nil
	srv := sess.srv
	srv.mu.Lock()
	if set := srv.listening[p.uid]; set != nil {
		delete(set, p)
		if len(set) == 0 {
			delete(srv.listening, p.uid)
		}
	}
	srv.mu.Unlock()
	p.stop()
}

// wake nudges the pushers of uid's listening sessions.
func (s *Server) wake(uid uint64) {
	for _, p := range s.listeners(uid) {
		p.wake()
	}
}
