package clienttest

import (
	"context"
	"sync"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// helloTimeout bounds the wait for a client's hello.
const helloTimeout = 10 * time.Second

// session is one client connection to a replica. serve runs on one
// goroutine; push and close may be called from others.
type session struct {
	c  *Cluster
	r  *replica
	wc *wire.Conn

	clientID string // set by the hello, before any other use

	mu        sync.Mutex
	userName  string // "" when not logged in
	userID    uint64
	listening bool
	closed    bool
}

func (s *session) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	_ = s.wc.Close()
}

func (s *session) user() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userName
}

func (s *session) listeningAs(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listening && s.userName == user
}

func (s *session) push(m wire.Message) {
	f, err := wire.NewPush(wire.PushMessage, m)
	if err == nil {
		_ = s.wc.WriteFrame(f)
	}
}

func (s *session) serve() {
	ctx, cancel := context.WithTimeout(context.Background(), helloTimeout)
	req, h, err := s.wc.AcceptHello(ctx)
	cancel()
	if err != nil {
		return
	}
	s.clientID = h.ClientID
	role, epoch, primary := s.c.role(s.r.id)
	resp, err := wire.NewResponse(req, wire.HelloOK{
		Version: wire.Version, ServerID: uint32(s.r.id), Role: role, Epoch: epoch,
		Primary: primary, MaxFrame: wire.DefaultMaxFrame,
	})
	if err != nil || s.wc.WriteFrame(resp) != nil {
		return
	}
	for {
		req, err := s.wc.ReadFrame()
		if err != nil {
			return
		}
		if e := wire.CheckRequest(req); e != nil {
			if s.reply(req, nil, e) != nil {
				return
			}
			continue
		}
		if !s.handle(req) {
			return
		}
	}
}

// reply writes the response to req: body, or e if not nil.
func (s *session) reply(req wire.Frame, body any, e *wire.Error) error {
	if e != nil {
		return s.wc.WriteFrame(wire.NewErrorResponse(req, e))
	}
	f, err := wire.NewResponse(req, body)
	if err != nil {
		return s.wc.WriteFrame(wire.NewErrorResponse(req, wire.ErrorOf(err)))
	}
	return s.wc.WriteFrame(f)
}

// handle serves one request; false ends the connection.
func (s *session) handle(req wire.Frame) bool {
	c := s.c
	c.mu.Lock()
	isPrimary := c.primary == s.r.id
	waiting := ""
	if c.primary < 0 {
		waiting = c.waiting
	}
	var primary string
	if c.primary >= 0 {
		primary = c.Addr(c.primary)
	}
	var fault Fault
	if isPrimary {
		for i := range c.faults {
			if f := &c.faults[i]; f.Op == req.Op && f.Count > 0 {
				f.Count--
				fault = *f
				break
			}
		}
	}
	rec := Request{Server: s.r.id, ClientID: s.clientID, Op: req.Op, Seq: req.Seq}
	_, rec.Replayed = c.state.dedup[dedupKey{s.clientID, req.Seq}]
	rec.Replayed = rec.Replayed && wire.Mutating(req.Op)
	c.requests = append(c.requests, rec)
	c.mu.Unlock()

	if !isPrimary && waiting != "" && req.Op != wire.OpStatus {
		return s.reply(req, nil, wire.Errorf(wire.CodeUnavailable, "%s", waiting)) == nil
	}
	if !isPrimary && req.Op != wire.OpPing && req.Op != wire.OpStatus {
		e := wire.Errorf(wire.CodeNotPrimary, "replica %d is a backup", s.r.id)
		e.Primary = primary
		return s.reply(req, nil, e) == nil
	}
	switch fault.Mode {
	case CutBeforeApply:
		return false
	case Swallow:
		return true
	case ReplyError:
		e := wire.Errorf(fault.Code, "injected fault")
		e.Primary = fault.Primary
		return s.reply(req, nil, e) == nil
	}

	body, e, pushes, self := s.apply(req)
	if fault.Mode == CutAfterApply {
		s.close()
		for _, m := range pushes {
			c.push(m)
		}
		return false
	}
	if s.reply(req, body, e) != nil {
		return false
	}
	for _, m := range self {
		s.push(m)
	}
	for _, m := range pushes {
		c.push(m)
	}
	return true
}

// apply applies req to the shared state, deduplicating mutating requests.
// It returns the response, the messages to push to their recipients, and
// those to push on this connection (the queue, after listen).
func (s *session) apply(req wire.Frame) (body any, e *wire.Error, pushes, self []wire.Message) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	key := dedupKey{s.clientID, req.Seq}
	if wire.Mutating(req.Op) {
		if r, ok := c.state.dedup[key]; ok {
			return r.body, r.err, nil, nil
		}
		defer func() { c.state.dedup[key] = result{body: body, err: e} }()
	}

	s.mu.Lock()
	name, id := s.userName, s.userID
	s.mu.Unlock()
	var acct *account
	switch req.Op {
	case wire.OpRegister, wire.OpLogin, wire.OpPing, wire.OpStatus, wire.OpUsers:
		// users is allowed without login here, as the CLI expects.
	default:
		if acct, e = c.state.current(name, id); e != nil {
			return nil, e, nil, nil
		}
	}

	switch req.Op {
	case wire.OpPing:
		return wire.PingResponse{}, nil, nil, nil
	case wire.OpStatus:
		c.mu.Unlock()
		st := c.statuses()
		c.mu.Lock()
		return wire.StatusResponse{Replicas: st}, nil, nil, nil
	case wire.OpRegister:
		var r wire.RegisterRequest
		if e = decode(req, &r); e == nil {
			e = c.state.register(r.User, r.Password)
		}
		return wire.RegisterResponse{User: r.User}, e, nil, nil
	case wire.OpLogin:
		var r wire.LoginRequest
		if e = decode(req, &r); e != nil {
			return nil, e, nil, nil
		}
		a, e := c.state.login(r.User, r.Password)
		if e != nil {
			return nil, e, nil, nil
		}
		s.mu.Lock()
		s.userName, s.userID, s.listening = a.name, a.id, false
		s.mu.Unlock()
		return wire.LoginResponse{User: a.name, Unread: len(c.state.queued(a.name, 0))}, nil, nil, nil
	case wire.OpLogout:
		s.logout()
		return wire.LogoutResponse{}, nil, nil, nil
	case wire.OpUsers:
		var r wire.UsersRequest
		if e = decode(req, &r); e != nil {
			return nil, e, nil, nil
		}
		p := c.primary
		resp, e := c.state.listUsers(r.Pattern, r.After, r.Limit, func(n string) bool { return c.online(n, p) })
		return resp, e, nil, nil
	case wire.OpSend:
		var r wire.SendRequest
		if e = decode(req, &r); e != nil {
			return nil, e, nil, nil
		}
		m, e := c.state.send(acct.name, r.To, r.Body)
		if e != nil {
			return nil, e, nil, nil
		}
		return wire.SendResponse{Message: m}, nil, []wire.Message{m}, nil
	case wire.OpRead:
		var r wire.ReadRequest
		if e = decode(req, &r); e != nil {
			return nil, e, nil, nil
		}
		return wire.ReadResponse{Messages: orEmpty(c.state.read(acct, r.Limit))}, nil, nil, nil
	case wire.OpHistory:
		var r wire.HistoryRequest
		if e = decode(req, &r); e != nil {
			return nil, e, nil, nil
		}
		resp, e := c.state.history(acct, r)
		return resp, e, nil, nil
	case wire.OpDeleteMessages:
		var r wire.DeleteMessagesRequest
		if e = decode(req, &r); e != nil {
			return nil, e, nil, nil
		}
		ids, e := c.state.deleteMessages(acct, r.IDs)
		return wire.DeleteMessagesResponse{Deleted: ids}, e, nil, nil
	case wire.OpDeleteAccount:
		delete(c.state.users, acct.name)
		s.logout()
		return wire.DeleteAccountResponse{User: acct.name}, nil, nil, nil
	case wire.OpListen:
		s.mu.Lock()
		s.listening = true
		s.mu.Unlock()
		return wire.ListenResponse{}, nil, nil, c.state.queued(acct.name, 0)
	case wire.OpAck:
		var r wire.AckRequest
		if e = decode(req, &r); e != nil {
			return nil, e, nil, nil
		}
		return wire.AckResponse{}, c.state.ack(acct, r.IDs), nil, nil
	}
	return nil, wire.Errorf(wire.CodeUnknownOp, "op %q", req.Op), nil, nil
}

func (s *session) logout() {
	s.mu.Lock()
	s.userName, s.userID, s.listening = "", 0, false
	s.mu.Unlock()
}

func decode(req wire.Frame, v any) *wire.Error {
	if err := wire.Decode(req.Body, v); err != nil {
		return wire.Errorf(wire.CodeBadRequest, "%s body: %v", req.Op, err)
	}
	return nil
}

func orEmpty(ms []wire.Message) []wire.Message {
	if ms == nil {
		return []wire.Message{}
	}
	return ms
}
