package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
)

// dispatch runs one request and returns its response body.
func (sess *session) dispatch(ctx context.Context, req wire.Frame) (any, error) {
	sess.curOp = req.Op
	switch req.Op {
	case wire.OpPing:
		return wire.PingResponse{}, nil
	case wire.OpStatus:
		return sess.srv.statusResponse(), nil
	case wire.OpMetrics:
		return sess.srv.metrics(req)
	}
	// Everything else needs the primary: a backup's state may lag, and only
	// the primary accepts writes.
	if err := sess.srv.requirePrimary(); err != nil {
		return nil, err
	}
	if readsState(req.Op) {
		// And a read must not see a state that a newer primary elsewhere
		// has moved past (the read lease), nor miss what was committed
		// before it (a new primary applies asynchronously).
		if err := sess.srv.readBarrier(ctx); err != nil {
			return nil, err
		}
	}
	switch req.Op {
	case wire.OpRegister:
		return sess.register(ctx, req)
	case wire.OpLogin:
		return sess.login(ctx, req)
	case wire.OpUsers:
		return sess.users(req)
	}
	if sess.uid == 0 {
		return nil, wire.Errorf(wire.CodeNotLoggedIn, "log in first")
	}
	switch req.Op {
	case wire.OpLogout:
		sess.stopListening()
		sess.uid, sess.name = 0, ""
		return wire.LogoutResponse{}, nil
	case wire.OpSend:
		return sess.send(ctx, req)
	case wire.OpRead:
		return sess.read(ctx, req)
	case wire.OpHistory:
		return sess.history(req)
	case wire.OpDeleteMessages:
		return sess.deleteMessages(ctx, req)
	case wire.OpDeleteAccount:
		return sess.deleteAccount(ctx, req)
	case wire.OpListen:
		sess.startListening()
		return wire.ListenResponse{}, nil
	case wire.OpAck:
		return sess.ack(ctx, req)
	}
	return nil, wire.Errorf(wire.CodeUnknownOp, "unknown op %q", req.Op)
}

// readsState reports whether op answers from the chat state: such requests
// pass the replicator's read barrier first. (Writes need none: they commit
// on every ISR member, which a deposed primary cannot get.)
func readsState(op string) bool {
	switch op {
	case wire.OpLogin, wire.OpUsers, wire.OpRead, wire.OpHistory, wire.OpListen:
		return true
	}
	return false
}

// readBarrier passes when the replicator says a read now is current (see
// ReadBarrier); a replicator without the capability is trusted.
func (s *Server) readBarrier(ctx context.Context) error {
	rb, ok := s.repl.(ReadBarrier)
	if !ok {
		return nil
	}
	return rb.ReadBarrier(ctx)
}

// defaultPage is the page size of a listing that asks for none.
const defaultPage = 100

// pageLimit maps a requested page size to one the state accepts.
func pageLimit(n int) int {
	if n <= 0 {
		return defaultPage
	}
	return min(n, chat.MaxQueryLimit)
}

func decode(req wire.Frame, v any) error {
	if err := wire.Decode(req.Body, v); err != nil {
		return wire.Errorf(wire.CodeBadRequest, "%s: malformed body: %v", req.Op, err)
	}
	return nil
}

func (s *Server) requirePrimary() error {
	st := s.repl.Status()
	if st.Role == wire.RolePrimary {
		return nil
	}
	if st.Waiting != "" {
		return &wire.Error{Code: wire.CodeUnavailable, Message: st.Waiting, Primary: st.Primary}
	}
	return &wire.Error{Code: wire.CodeNotPrimary, Message: "this replica is a backup", Primary: st.Primary}
}

// wireError maps any error of the request path to a typed wire error.
func (s *Server) wireError(err error) *wire.Error {
	var werr *wire.Error
	switch {
	case errors.As(err, &werr):
		return werr
	case errors.Is(err, ErrNotPrimary):
		return &wire.Error{Code: wire.CodeNotPrimary, Message: "this replica is not the primary", Primary: s.repl.Status().Primary}
	case errors.Is(err, ErrOutcomeUnknown):
		return &wire.Error{Code: wire.CodeOutcomeUnknown, Message: "the replica took the request and lost the primary role before it committed; " +
			"it may still be applied: retry with the same seq (" + strings.TrimPrefix(err.Error(), ErrOutcomeUnknown.Error()+": ") + ")"}
	case errors.Is(err, ErrUnavailable):
		st := s.repl.Status()
		msg := st.Waiting
		if msg == "" {
			// The replicator's own reason (a primary without its read
			// lease, a stopped replica).
			msg = strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
		}
		return &wire.Error{Code: wire.CodeUnavailable, Message: msg, Primary: st.Primary}
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "the request did not commit in time; retry it with the same seq")
	case errors.Is(err, context.Canceled):
		return wire.Errorf(wire.CodeUnavailable, "the server is shutting down")
	}
	code := chat.Code(err)
	switch code {
	case chat.CodeInternal:
		s.logger.Error("request failed", "err", err)
		return wire.Errorf(wire.CodeInternal, "internal error")
	case "invalid_argument", "expired_request":
		return wire.Errorf(wire.CodeBadRequest, "%s", domainMessage(err))
	case "message_exists":
		return wire.Errorf(wire.CodeInternal, "%s", domainMessage(err))
	}
	return wire.Errorf(wire.Code(code), "%s", domainMessage(err))
}

// domainMessage strips the wrapping context that is meant for logs, keeping
// the user-facing sentence.
func domainMessage(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil || chat.Code(u) != chat.Code(err) {
			return err.Error()
		}
		err = u
	}
}

// mutate runs a mutating command exactly once for (client id, seq) and
// returns the applied result. See the package doc for the four steps.
func (sess *session) mutate(ctx context.Context, seq uint64, cmd chat.Command) (chat.Result, error) {
	srv := sess.srv
	if !srv.seqs.fresh(srv.state, sess.clientID, seq) {
		if res, ok, err := srv.state.Result(sess.clientID, seq); err != nil {
			return chat.Result{}, fmt.Errorf("look up result of %s/%d: %w", sess.clientID, seq, err)
		} else if ok {
			return res, nil
		}
	}
	env := srv.env(sess.clientID, seq)
	events, err := chat.Decide(srv.state, env, cmd)
	if err != nil {
		return chat.Result{}, err
	}
	recs := make([]eventlog.Record, 0, len(events))
	for _, ev := range events {
		typ, data, err := chat.EncodeEvent(ev)
		if err != nil {
			return chat.Result{}, fmt.Errorf("encode %s event: %w", typ, err)
		}
		recs = append(recs, eventlog.Record{Type: typ, Data: data, ClientID: sess.clientID, Seq: seq, Time: env.Now})
	}
	slot := srv.results.add(sess.clientID, seq)
	_, err = srv.repl.Propose(ctx, recs)
	res, ok := srv.results.take(sess.clientID, seq, slot)
	if err != nil {
		return chat.Result{}, err
	}
	if srv.cfg.AfterCommit != nil {
		srv.cfg.AfterCommit(sess.curOp)
	}
	if ok {
		return res, nil
	}
	res, ok, err = srv.state.Result(sess.clientID, seq)
	if err != nil {
		return chat.Result{}, fmt.Errorf("look up result of %s/%d: %w", sess.clientID, seq, err)
	}
	if !ok {
		// Applied but no result: only possible if the dedup window moved past
		// seq, i.e. the client reused an old seq.
		return chat.Result{}, wire.Errorf(wire.CodeBadRequest, "request %d is too old to deduplicate", seq)
	}
	return res, nil
}

func (sess *session) register(ctx context.Context, req wire.Frame) (any, error) {
	var body wire.RegisterRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	release, err := sess.srv.hashSlot(ctx)
	if err != nil {
		return nil, err
	}
	res, err := sess.mutate(ctx, req.Seq, chat.Register{Name: body.User, Password: body.Password})
	release()
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	return wire.RegisterResponse{User: body.User}, nil
}

func (sess *session) login(ctx context.Context, req wire.Frame) (any, error) {
	var body wire.LoginRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	srv := sess.srv
	now := srv.cfg.Now()
	if wait := srv.limiter.blocked(body.User, now); wait > 0 {
		return nil, wire.Errorf(wire.CodeRateLimited, "too many failed logins for %q; try again in %s", body.User, wait.Round(1e9))
	}
	release, err := srv.hashSlot(ctx)
	if err != nil {
		return nil, err
	}
	user, err := srv.state.VerifyLogin(body.User, body.Password)
	release()
	if err != nil {
		if errors.Is(err, chat.ErrWrongPassword) || errors.Is(err, chat.ErrUnknownUser) {
			srv.limiter.fail(body.User, now)
		}
		return nil, err
	}
	srv.limiter.succeed(body.User)
	if sess.uid != user.ID {
		sess.stopListening()
	}
	sess.uid, sess.name = user.ID, user.Name
	unread, err := srv.state.UnreadCount(user.ID)
	if err != nil {
		return nil, fmt.Errorf("count unread of %d: %w", user.ID, err)
	}
	return wire.LoginResponse{User: user.Name, Unread: unread}, nil
}

func (sess *session) users(req wire.Frame) (any, error) {
	var body wire.UsersRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	pattern := body.Pattern
	if pattern == "" {
		pattern = "*"
	}
	list, next, err := sess.srv.state.Users(pattern, body.After, pageLimit(body.Limit))
	if err != nil {
		return nil, err
	}
	out := wire.UsersResponse{Users: make([]wire.UserInfo, len(list)), Next: next}
	for i, u := range list {
		out.Users[i] = wire.UserInfo{Name: u.Name, Online: sess.srv.online(u.ID)}
	}
	return out, nil
}

func (sess *session) send(ctx context.Context, req wire.Frame) (any, error) {
	var body wire.SendRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	res, err := sess.mutate(ctx, req.Seq, chat.Send{FromUID: sess.uid, To: body.To, Body: body.Body})
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	return wire.SendResponse{Message: wire.Message{
		ID: res.MessageID, From: sess.name, To: body.To, Body: body.Body, SentAt: res.Time,
	}}, nil
}

// read delivers up to limit queued messages: it decides which (the queue's
// head), and the deliver event marks them. The answer lists the messages the
// event actually delivered, so a retry gets the same ones.
func (sess *session) read(ctx context.Context, req wire.Frame) (any, error) {
	var body wire.ReadRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	srv := sess.srv
	res, ok, err := srv.state.Result(sess.clientID, req.Seq)
	if err != nil {
		return nil, err
	}
	if !ok {
		limit := body.Limit
		if limit <= 0 || limit > chat.MaxQueryLimit {
			limit = chat.MaxQueryLimit
		}
		queued, err := srv.state.Unread(sess.uid, limit)
		if err != nil {
			return nil, err
		}
		if len(queued) == 0 {
			return wire.ReadResponse{Messages: []wire.Message{}}, nil
		}
		ids := make([]uint64, len(queued))
		for i, m := range queued {
			ids[i] = m.ID
		}
		if res, err = sess.mutate(ctx, req.Seq, chat.Deliver{UID: sess.uid, MessageIDs: ids}); err != nil {
			return nil, err
		}
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	msgs, err := srv.messages(res.IDs)
	if err != nil {
		return nil, err
	}
	return wire.ReadResponse{Messages: msgs}, nil
}

// messages looks up messages by id, skipping any deleted since, in log
// order (oldest first).
func (s *Server) messages(ids []uint64) ([]wire.Message, error) {
	found := make([]chat.Message, 0, len(ids))
	for _, id := range ids {
		m, ok, err := s.state.Message(id)
		if err != nil {
			return nil, fmt.Errorf("look up message %d: %w", id, err)
		}
		if ok {
			found = append(found, m)
		}
	}
	slices.SortFunc(found, func(a, b chat.Message) int { return cmp.Compare(a.Offset, b.Offset) })
	out := make([]wire.Message, len(found))
	for i, m := range found {
		out[i] = wireMessage(m)
	}
	return out, nil
}

func (sess *session) history(req wire.Frame) (any, error) {
	var body wire.HistoryRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	var (
		msgs       []chat.Message
		next, prev eventlog.Offset
		err        error
	)
	if body.Last {
		msgs, prev, err = sess.srv.state.HistoryLast(sess.uid, body.With, eventlog.Offset(body.Before), pageLimit(body.Limit))
	} else {
		msgs, next, err = sess.srv.state.History(sess.uid, body.With, eventlog.Offset(body.After), pageLimit(body.Limit))
	}
	if err != nil {
		return nil, err
	}
	out := wire.HistoryResponse{Messages: make([]wire.Message, len(msgs)), Next: uint64(next), Prev: uint64(prev)}
	for i, m := range msgs {
		out.Messages[i] = wireMessage(m)
	}
	return out, nil
}

func (sess *session) deleteMessages(ctx context.Context, req wire.Frame) (any, error) {
	var body wire.DeleteMessagesRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	res, err := sess.mutate(ctx, req.Seq, chat.DeleteMessages{UID: sess.uid, IDs: body.IDs})
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	deleted := res.IDs
	if deleted == nil {
		deleted = []uint64{}
	}
	return wire.DeleteMessagesResponse{Deleted: deleted}, nil
}

func (sess *session) deleteAccount(ctx context.Context, req wire.Frame) (any, error) {
	res, err := sess.mutate(ctx, req.Seq, chat.DeleteAccount{UID: sess.uid})
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	name := sess.name
	sess.stopListening()
	sess.uid, sess.name = 0, ""
	return wire.DeleteAccountResponse{User: name}, nil
}

func (sess *session) ack(ctx context.Context, req wire.Frame) (any, error) {
	var body wire.AckRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	if len(body.IDs) == 0 {
		return wire.AckResponse{}, nil
	}
	res, err := sess.mutate(ctx, req.Seq, chat.Deliver{UID: sess.uid, MessageIDs: body.IDs})
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil && !errors.Is(err, chat.ErrNotFound) {
		// Acknowledging a message already delivered (say, read meanwhile on
		// another connection) is not an error for the client.
		return nil, err
	}
	return wire.AckResponse{}, nil
}

func (s *Server) statusResponse() wire.StatusResponse {
	st := s.repl.Status()
	return wire.StatusResponse{Replicas: st.Replicas}
}

// LagSource is an optional capability of a Replicator: the replication lag
// samples that the metrics op serves.
type LagSource interface {
	LagSamples(after uint64, limit int) (samples []wire.LagSample, next, dropped uint64)
}

// maxLagSamples bounds one metrics answer so that it fits in a frame.
const maxLagSamples = 8192

func (s *Server) metrics(req wire.Frame) (any, error) {
	var body wire.MetricsRequest
	if err := decode(req, &body); err != nil {
		return nil, err
	}
	src, ok := s.repl.(LagSource)
	if !ok {
		return wire.MetricsResponse{Samples: []wire.LagSample{}, Next: body.After}, nil
	}
	limit := body.Limit
	if limit <= 0 || limit > maxLagSamples {
		limit = maxLagSamples
	}
	samples, next, dropped := src.LagSamples(body.After, limit)
	return wire.MetricsResponse{Samples: samples, Next: next, Dropped: dropped}, nil
}

// hashSlot waits for one of the server's password-hashing slots and returns
// the function that frees it. argon2id takes ~19 MiB and a core for tens of
// milliseconds per hash: a login storm (every client reconnecting after a
// failover) would otherwise hold one such block per client at once. With a
// slot per core, hashes queue instead of piling up, at no cost in throughput
// since they are CPU-bound anyway.
func (s *Server) hashSlot(ctx context.Context) (func(), error) {
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
