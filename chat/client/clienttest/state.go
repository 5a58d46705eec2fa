package clienttest

import (
	"path"
	"regexp"
	"slices"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// defaultPage is the page size of users, read and history when the request
// asks for 0.
const defaultPage = 100

// maxBody is the largest message body, as chatd's.
const maxBody = 4096

// epochTime is the clock of the fake: message n was sent n seconds after
// it, so that tests can predict sent_at.
var epochTime = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

// SentAt returns the sent_at the fake gives the message with id id.
func SentAt(id uint64) int64 { return epochTime.Add(time.Duration(id) * time.Second).UnixNano() }

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// account is one account; a name registered again gets a new id, so that
// the old account's messages stay hidden from the new one.
type account struct {
	id       uint64
	name     string
	password string
}

// message is a stored message and the views of it.
type message struct {
	wire.Message
	from, to  uint64 // account ids
	delivered bool
	hidden    map[uint64]bool // account ids that deleted it
}

// state is the fake's chat state, guarded by Cluster.mu.
type state struct {
	users    map[string]*account
	lastAcct uint64
	msgs     []*message // by id: msgs[i].ID == i+1
	dedup    map[dedupKey]result
}

type dedupKey struct {
	client string
	seq    uint64
}

// result is what a request got, kept for retries of mutating requests.
type result struct {
	body any
	err  *wire.Error
}

func newState() *state {
	return &state{users: make(map[string]*account), dedup: make(map[dedupKey]result)}
}

func (s *state) register(name, password string) *wire.Error {
	if !validName.MatchString(name) {
		return wire.Errorf(wire.CodeInvalidName, "invalid user name %q", name)
	}
	if _, ok := s.users[name]; ok {
		return wire.Errorf(wire.CodeUserExists, "user %q exists", name)
	}
	s.lastAcct++
	s.users[name] = &account{id: s.lastAcct, name: name, password: password}
	return nil
}

func (s *state) login(name, password string) (*account, *wire.Error) {
	a, ok := s.users[name]
	switch {
	case !ok:
		return nil, wire.Errorf(wire.CodeUnknownUser, "no user %q", name)
	case a.password != password:
		return nil, wire.Errorf(wire.CodeWrongPassword, "wrong password for %q", name)
	}
	return a, nil
}

// current returns the account a session logged in as, if it still exists.
func (s *state) current(name string, id uint64) (*account, *wire.Error) {
	a, ok := s.users[name]
	if !ok || a.id != id {
		return nil, wire.Errorf(wire.CodeNotLoggedIn, "not logged in")
	}
	return a, nil
}

func (s *state) send(from, to, body string) (wire.Message, *wire.Error) {
	fa, ok := s.users[from]
	if !ok {
		return wire.Message{}, wire.Errorf(wire.CodeUnknownUser, "no user %q", from)
	}
	ta, ok := s.users[to]
	switch {
	case !ok:
		return wire.Message{}, wire.Errorf(wire.CodeUnknownUser, "no user %q", to)
	case body == "":
		return wire.Message{}, wire.Errorf(wire.CodeEmptyMessage, "empty message")
	case len(body) > maxBody:
		return wire.Message{}, wire.Errorf(wire.CodeMessageTooLarge, "message of %d bytes over %d", len(body), maxBody)
	}
	id := uint64(len(s.msgs)) + 1
	m := &message{
		Message: wire.Message{ID: id, From: from, To: to, Body: body, SentAt: SentAt(id)},
		from:    fa.id, to: ta.id, hidden: make(map[uint64]bool),
	}
	s.msgs = append(s.msgs, m)
	return m.Message, nil
}

// queued returns up to limit (0: all) messages queued for name.
func (s *state) queued(name string, limit int) []wire.Message {
	a, ok := s.users[name]
	if !ok {
		return nil
	}
	var out []wire.Message
	for _, m := range s.msgs {
		if m.to == a.id && !m.delivered && !m.hidden[a.id] {
			out = append(out, m.Message)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

func (s *state) read(a *account, limit int) []wire.Message {
	if limit <= 0 {
		limit = defaultPage
	}
	out := s.queued(a.name, limit)
	for _, m := range out {
		s.msgs[m.ID-1].delivered = true
	}
	return out
}

func (s *state) history(a *account, r wire.HistoryRequest) (wire.HistoryResponse, *wire.Error) {
	var withID uint64
	if r.With != "" {
		w, ok := s.users[r.With]
		if !ok {
			return wire.HistoryResponse{}, wire.Errorf(wire.CodeUnknownUser, "no user %q", r.With)
		}
		withID = w.id
	}
	limit := r.Limit
	if limit <= 0 {
		limit = defaultPage
	}
	var match []wire.Message
	for _, m := range s.msgs {
		mine := m.from == a.id || m.to == a.id
		if !mine || m.hidden[a.id] || (withID != 0 && m.from != withID && m.to != withID) {
			continue
		}
		match = append(match, m.Message)
	}
	resp := wire.HistoryResponse{Messages: []wire.Message{}}
	if r.Last {
		// The cursor is a message id, as in the forward direction.
		end := len(match)
		if r.Before != 0 {
			end = 0
			for end < len(match) && match[end].ID < r.Before {
				end++
			}
		}
		start := max(0, end-limit)
		resp.Messages = append(resp.Messages, match[start:end]...)
		if start > 0 {
			resp.Prev = match[start].ID
		}
		return resp, nil
	}
	for _, m := range match {
		if m.ID <= r.After {
			continue
		}
		if len(resp.Messages) == limit {
			resp.Next = resp.Messages[limit-1].ID
			break
		}
		resp.Messages = append(resp.Messages, m)
	}
	return resp, nil
}

func (s *state) listUsers(pattern, after string, limit int, online func(string) bool) (wire.UsersResponse, *wire.Error) {
	if pattern == "" {
		pattern = "*"
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return wire.UsersResponse{}, wire.Errorf(wire.CodeBadRequest, "bad pattern %q", pattern)
	}
	if limit <= 0 {
		limit = defaultPage
	}
	names := make([]string, 0, len(s.users))
	for n := range s.users {
		names = append(names, n)
	}
	slices.Sort(names)
	resp := wire.UsersResponse{Users: []wire.UserInfo{}}
	for _, n := range names {
		if ok, _ := path.Match(pattern, n); !ok || n <= after {
			continue
		}
		if len(resp.Users) == limit {
			resp.Next = resp.Users[limit-1].Name
			break
		}
		resp.Users = append(resp.Users, wire.UserInfo{Name: n, Online: online(n)})
	}
	return resp, nil
}

// mine finds message id for a, with the errors of delete_messages and ack.
func (s *state) mine(a *account, id uint64, recipientOnly bool) (*message, *wire.Error) {
	if id == 0 || id > uint64(len(s.msgs)) {
		return nil, wire.Errorf(wire.CodeNotFound, "no message %d", id)
	}
	m := s.msgs[id-1]
	if m.hidden[a.id] {
		return nil, wire.Errorf(wire.CodeNotFound, "no message %d", id)
	}
	if m.to != a.id && (recipientOnly || m.from != a.id) {
		return nil, wire.Errorf(wire.CodeForbidden, "message %d is not yours", id)
	}
	return m, nil
}

func (s *state) deleteMessages(a *account, ids []uint64) ([]uint64, *wire.Error) {
	ms := make([]*message, 0, len(ids))
	for _, id := range ids {
		m, e := s.mine(a, id, false)
		if e != nil {
			return nil, e
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		m.hidden[a.id] = true
	}
	return append([]uint64{}, ids...), nil
}

func (s *state) ack(a *account, ids []uint64) *wire.Error {
	ms := make([]*message, 0, len(ids))
	for _, id := range ids {
		m, e := s.mine(a, id, true)
		if e != nil {
			return e
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		m.delivered = true
	}
	return nil
}
