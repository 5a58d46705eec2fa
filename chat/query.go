package chat

import (
	"encoding/binary"
	"fmt"
	"path"
	"strings"

	"github.com/replichat/replichat/eventlog"
)

// MaxQueryLimit caps the limit of the paged queries.
const MaxQueryLimit = 1000

// UserInfo is the public view of an account.
type UserInfo struct {
	ID      uint64
	Name    string
	Created int64  // Unix nanoseconds (the register record's Time)
	Unread  uint64 // messages queued, not yet delivered
	History uint64 // messages in the account's history (sent and received)
}

func (u userRec) info() UserInfo {
	return UserInfo{ID: u.ID, Name: u.Name, Created: u.Created, Unread: u.Unread, History: u.History}
}

// Message is a message as its sender and recipient see it. From and To are
// the names at send time: a deleted sender's messages keep its name.
type Message struct {
	ID      uint64
	FromUID uint64
	From    string
	ToUID   uint64
	To      string
	Body    string
	Time    int64           // Unix nanoseconds (the send record's Time)
	Offset  eventlog.Offset // of the send record: the message's log order
	// Delivered is true once the recipient read or acknowledged it.
	Delivered bool
	// SenderView and RecipientView tell whose views still hold it.
	SenderView    bool
	RecipientView bool
}

func (m msgRec) public() Message {
	return Message{ID: m.ID, FromUID: m.From, From: m.FromName, ToUID: m.To, To: m.ToName, Body: m.Body,
		Time: m.Time, Offset: eventlog.Offset(m.Offset), Delivered: m.Delivered,
		SenderView: m.SenderView, RecipientView: m.RecipientView}
}

func checkLimit(limit int) error {
	if limit <= 0 || limit > MaxQueryLimit {
		return fmt.Errorf("%w: limit %d (want 1-%d)", ErrInvalidArgument, limit, MaxQueryLimit)
	}
	return nil
}

// User returns the live account named name, ok false if none.
func (s *State) User(name string) (UserInfo, bool, error) {
	var (
		u  userRec
		ok bool
	)
	err := s.store.View(func(kv KV) error {
		var err error
		u, ok, err = getUserByName(kv, name)
		return err
	})
	if err != nil {
		return UserInfo{}, false, fmt.Errorf("read user %q: %w", name, err)
	}
	return u.info(), ok, nil
}

// UserByID returns the live account uid, ok false if none.
func (s *State) UserByID(uid uint64) (UserInfo, bool, error) {
	var (
		u  userRec
		ok bool
	)
	err := s.store.View(func(kv KV) error {
		var err error
		u, ok, err = getUser(kv, uid)
		return err
	})
	if err != nil {
		return UserInfo{}, false, fmt.Errorf("read user %d: %w", uid, err)
	}
	return u.info(), ok, nil
}

// VerifyLogin checks name's password. Unknown user and wrong password are
// ErrUnknownUser and ErrWrongPassword; the server may merge them so as not
// to reveal which names exist. Rate limiting is the server's job.
func (s *State) VerifyLogin(name, password string) (UserInfo, error) {
	var (
		u  userRec
		ok bool
	)
	err := s.store.View(func(kv KV) error {
		var err error
		u, ok, err = getUserByName(kv, name)
		return err
	})
	if err != nil {
		return UserInfo{}, fmt.Errorf("read user %q: %w", name, err)
	}
	if !ok {
		return UserInfo{}, fmt.Errorf("login %q: %w", name, ErrUnknownUser)
	}
	// Hash outside the transaction: argon2 is slow and must not pin a view.
	match, err := checkPassword(u.Hash, password)
	if err != nil {
		return UserInfo{}, fmt.Errorf("check password of %q: %w", name, err)
	}
	if !match {
		return UserInfo{}, fmt.Errorf("login %q: %w", name, ErrWrongPassword)
	}
	return u.info(), nil
}

// Users lists accounts whose names match pattern (path.Match syntax: *, ?,
// [...]), in name order, starting after the name after ("" for the first
// page), at most limit. next is the name to pass as after for the next page,
// "" when there is none. A malformed pattern is ErrInvalidArgument.
func (s *State) Users(pattern, after string, limit int) ([]UserInfo, string, error) {
	if err := checkLimit(limit); err != nil {
		return nil, "", err
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, "", fmt.Errorf("%w: pattern %q: %v", ErrInvalidArgument, pattern, err)
	}
	// Seek to the pattern's literal prefix: only names that start with it
	// can match, and names are in key order.
	lit := pattern
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		lit = pattern[:i]
	}
	prefix := nameKey(lit)
	var start []byte
	if after != "" {
		start = append(nameKey(after), 0) // the first key after "after"
	}
	var (
		out  []UserInfo
		next string
	)
	err := s.store.View(func(kv KV) error {
		return kv.Scan(prefix, start, func(k, v []byte) (bool, error) {
			name := string(k[len(prefixName):])
			if ok, _ := path.Match(pattern, name); !ok {
				return true, nil
			}
			if len(out) == limit {
				next = out[len(out)-1].Name
				return false, nil
			}
			uid, err := decodeU64(v)
			if err != nil {
				return false, err
			}
			u, ok, err := getUser(kv, uid)
			if err != nil {
				return false, err
			}
			if !ok {
				return false, fmt.Errorf("%w: name %q points at missing user %d", ErrInconsistent, name, uid)
			}
			out = append(out, u.info())
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("list users %q: %w", pattern, err)
	}
	return out, next, nil
}

// Unread returns up to limit messages of uid's unread queue, oldest first.
// They stay queued until a Deliver applies.
func (s *State) Unread(uid uint64, limit int) ([]Message, error) {
	return s.UnreadFrom(uid, 0, limit)
}

// UnreadFrom is Unread restricted to the queued messages at offset from or
// later. A reader that knows everything before from has left the queue
// should say so: delivered messages leave deletion markers at the queue's
// head until the store compacts them, and a scan from the head walks them
// all.
func (s *State) UnreadFrom(uid uint64, from eventlog.Offset, limit int) ([]Message, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var out []Message
	err := s.store.View(func(kv KV) error {
		return kv.Scan(queuePrefix(uid), queueKey(uid, uint64(from)), func(_, v []byte) (bool, error) {
			m, err := indexedMsg(kv, v)
			if err != nil {
				return false, err
			}
			out = append(out, m.public())
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read unread of user %d: %w", uid, err)
	}
	return out, nil
}

// UnreadCount returns the length of uid's unread queue (0 for no account).
func (s *State) UnreadCount(uid uint64) (int, error) {
	u, _, err := s.UserByID(uid)
	return int(u.Unread), err
}

// History returns uid's messages, sent and received, oldest first (log
// order), starting after the message at offset after (0 for the first
// page), at most limit. With with != "", only messages exchanged with the
// live account of that name (by id: never an older account of the same
// name); an unknown with is ErrUnknownUser. next is the cursor of the next
// page, 0 when there is none.
func (s *State) History(uid uint64, with string, after eventlog.Offset, limit int) ([]Message, eventlog.Offset, error) {
	if err := checkLimit(limit); err != nil {
		return nil, 0, err
	}
	var (
		out  []Message
		next eventlog.Offset
	)
	err := s.store.View(func(kv KV) error {
		peer, err := historyPeer(kv, with)
		if err != nil {
			return err
		}
		var start []byte
		if after > 0 {
			start = historyKey(uid, uint64(after)+1)
		}
		return kv.Scan(historyPrefix(uid), start, func(_, v []byte) (bool, error) {
			m, err := indexedMsg(kv, v)
			if err != nil {
				return false, err
			}
			if peer != 0 && !m.exchanged(uid, peer) {
				return true, nil
			}
			if len(out) == limit {
				next = out[len(out)-1].Offset
				return false, nil
			}
			out = append(out, m.public())
			return true, nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read history of user %d: %w", uid, err)
	}
	return out, next, nil
}

// historyPeer resolves a history's with filter: the id of the live account
// named with, 0 for no filter, ErrUnknownUser for no such account.
func historyPeer(kv KV, with string) (uint64, error) {
	if with == "" {
		return 0, nil
	}
	p, ok, err := getUserByName(kv, with)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownUser, with)
	}
	return p.ID, nil
}

// exchanged reports whether m went between uid and peer, either way.
func (m msgRec) exchanged(uid, peer uint64) bool {
	return (m.From == peer && m.To == uid) || (m.To == peer && m.From == uid)
}

// HistoryLast is History from the end: uid's newest messages, at most
// limit, of those at offsets before before (0: the whole history), still
// oldest first, with the same with filter and errors. prev is the cursor of
// the older page before them (pass it as before), 0 when they start the
// history.
//
// KV scans forward only, so this walks uid's history index from its start
// up to before, keeping the last limit+1 entries: its cost grows with the
// history's length, not the page's. Only with != "" loads every message on
// the way (to match the other party); otherwise only the page's are loaded.
func (s *State) HistoryLast(uid uint64, with string, before eventlog.Offset, limit int) ([]Message, eventlog.Offset, error) {
	if err := checkLimit(limit); err != nil {
		return nil, 0, err
	}
	type entry struct{ off, id uint64 }
	var (
		out  []Message
		prev eventlog.Offset
	)
	err := s.store.View(func(kv KV) error {
		peer, err := historyPeer(kv, with)
		if err != nil {
			return err
		}
		// ring holds the last len(ring) matching entries; next is where
		// the following one goes once it is full.
		ring := make([]entry, 0, limit+1)
		next := 0
		prefix := historyPrefix(uid)
		err = kv.Scan(prefix, nil, func(k, v []byte) (bool, error) {
			if len(k) != len(prefix)+8 {
				return false, fmt.Errorf("%w: history key of %d bytes", ErrInconsistent, len(k))
			}
			off := binary.BigEndian.Uint64(k[len(prefix):])
			if before > 0 && off >= uint64(before) {
				return false, nil
			}
			id, err := decodeU64(v)
			if err != nil {
				return false, err
			}
			if peer != 0 {
				m, err := indexedMsg(kv, v)
				if err != nil {
					return false, err
				}
				if !m.exchanged(uid, peer) {
					return true, nil
				}
			}
			if len(ring) < cap(ring) {
				ring = append(ring, entry{off, id})
			} else {
				ring[next] = entry{off, id}
				next = (next + 1) % len(ring)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		ordered := append(ring[next:len(ring):len(ring)], ring[:next]...)
		if len(ordered) > limit {
			// One more than the page: there is an older page.
			ordered = ordered[1:]
			prev = eventlog.Offset(ordered[0].off)
		}
		out = make([]Message, 0, len(ordered))
		for _, e := range ordered {
			m, ok, err := getMsg(kv, e.id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: history index names missing message %d", ErrInconsistent, e.id)
			}
			out = append(out, m.public())
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read the end of the history of user %d: %w", uid, err)
	}
	return out, prev, nil
}

// Message returns message id, ok false if no view of it remains. Callers
// check ownership (FromUID/ToUID and the views) before showing it.
func (s *State) Message(id uint64) (Message, bool, error) {
	var (
		m  msgRec
		ok bool
	)
	err := s.store.View(func(kv KV) error {
		var err error
		m, ok, err = getMsg(kv, id)
		return err
	})
	if err != nil {
		return Message{}, false, fmt.Errorf("read message %d: %w", id, err)
	}
	return m.public(), ok, nil
}

// indexedMsg loads the message an index entry (value v) points at.
func indexedMsg(kv KV, v []byte) (msgRec, error) {
	id, err := decodeU64(v)
	if err != nil {
		return msgRec{}, err
	}
	m, ok, err := getMsg(kv, id)
	if err == nil && !ok {
		err = fmt.Errorf("%w: index names missing message %d", ErrInconsistent, id)
	}
	return m, err
}
