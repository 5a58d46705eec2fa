package chat

import (
	"errors"
	"fmt"
	"io"
)

// Command is a client request to change the state. Decide validates it
// and turns it into events.
type Command interface{ command() }

// Register creates the account Name.
type Register struct {
	Name     string
	Password string
}

// Send sends Body from the logged-in user FromUID to the account named To.
type Send struct {
	FromUID uint64
	To      string
	Body    string
}

// Deliver marks messages of UID's unread queue as delivered: used by read
// and by acknowledgements of pushed messages.
type Deliver struct {
	UID        uint64
	MessageIDs []uint64
}

// DeleteMessages deletes UID's view of messages it sent or received.
type DeleteMessages struct {
	UID uint64
	IDs []uint64
}

// DeleteAccount deletes the account UID.
type DeleteAccount struct {
	UID uint64
}

func (Register) command()       {}
func (Send) command()           {}
func (Deliver) command()        {}
func (DeleteMessages) command() {}
func (DeleteAccount) command()  {}

// Env is what Decide needs from the primary: everything non-deterministic.
// The events it returns carry the outcome, so that applying them is
// deterministic on every replica.
type Env struct {
	// Now is the primary's clock for this command, in Unix nanoseconds. The
	// events do not carry it: the server stamps the same value on their
	// records (Record.Time), which is what Apply uses.
	Now int64
	// NewMessageID returns the non-zero id of the message a send creates.
	// The server returns MessageID(client id, seq) of the request, so that
	// every primary deciding the request (a retry on both sides of a forked
	// log) assigns the same id. Apply stores the message under another id
	// only if that one is taken (see MessageID), and its Result says which.
	NewMessageID func() uint64
	// Rand is the source of password salts (crypto/rand.Reader in
	// production).
	Rand io.Reader
	// Argon are the password hashing costs; zero means DefaultArgonParams.
	Argon ArgonParams
}

// Decide validates cmd against the current state of s and returns the
// events that carry it out. Validation is repeated when the events apply
// (the state may have changed in between); Decide only spares the log the
// requests that are certain to fail. It returns a domain error (see Code)
// for an invalid command, and another error for a misconfigured Env or a
// storage failure.
//
// The server encodes each event (EncodeEvent) into a record carrying the
// request's client id and seq and Time = env.Now.
func Decide(s *State, env Env, cmd Command) ([]Event, error) {
	var ev Event
	err := s.store.View(func(view KV) error {
		kv := committedReads{KV: view, c: &s.committed}
		var err error
		switch cmd := cmd.(type) {
		case Register:
			ev, err = decideRegister(kv, env, cmd)
		case Send:
			ev, err = decideSend(kv, env, cmd)
		case Deliver:
			ev, err = decideDeliver(kv, cmd)
		case DeleteMessages:
			ev, err = decideDeleteMessages(kv, cmd)
		case DeleteAccount:
			ev, err = decideDeleteAccount(kv, cmd)
		default:
			err = fmt.Errorf("%w: unknown command %T", ErrInvalidArgument, cmd)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decide %T: %w", cmd, err)
	}
	return []Event{ev}, nil
}

func decideRegister(kv KV, env Env, cmd Register) (Event, error) {
	if err := checkName(cmd.Name); err != nil {
		return nil, err
	}
	if len(cmd.Password) == 0 || len(cmd.Password) > MaxPasswordBytes {
		return nil, fmt.Errorf("%w: password of %d bytes (want 1-%d)", ErrInvalidArgument, len(cmd.Password), MaxPasswordBytes)
	}
	if _, ok, err := kv.Get(nameKey(cmd.Name)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%w: %q", ErrUserExists, cmd.Name)
		}
		return nil, err
	}
	if env.Rand == nil {
		return nil, errors.New("chat: Env.Rand is nil")
	}
	params := env.Argon
	if params == (ArgonParams{}) {
		params = DefaultArgonParams()
	}
	hash, err := hashPassword(cmd.Password, params, env.Rand)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return &RegisterEvent{Name: cmd.Name, PasswordHash: hash, Origin: true}, nil
}

func decideSend(kv KV, env Env, cmd Send) (Event, error) {
	if err := checkBody(cmd.Body); err != nil {
		return nil, err
	}
	from, err := liveUser(kv, cmd.FromUID)
	if err != nil {
		return nil, err
	}
	if err := checkName(cmd.To); err != nil {
		return nil, err
	}
	to, ok, err := getUserByName(kv, cmd.To)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, cmd.To)
	}
	if to.Unread >= MaxUnread {
		return nil, &QueueFullError{To: to.Name, Limit: MaxUnread}
	}
	if env.NewMessageID == nil {
		return nil, errors.New("chat: Env.NewMessageID is nil")
	}
	id := env.NewMessageID()
	if id == 0 {
		return nil, errors.New("chat: Env.NewMessageID returned 0")
	}
	return &SendEvent{MessageID: id, FromUID: from.ID, ToUID: to.ID, Body: cmd.Body,
		FromOrigin: from.Origin, ToOrigin: to.Origin}, nil
}

func decideDeliver(kv KV, cmd Deliver) (Event, error) {
	if err := checkIDs(cmd.MessageIDs); err != nil {
		return nil, err
	}
	u, err := liveUser(kv, cmd.UID)
	if err != nil {
		return nil, err
	}
	ids := sortedIDs(cmd.MessageIDs)
	for _, id := range ids {
		m, ok, err := getMsg(kv, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: message %d", ErrNotFound, id)
		}
		if m.To != cmd.UID {
			return nil, fmt.Errorf("%w: message %d was not sent to you", ErrForbidden, id)
		}
	}
	return &DeliverEvent{UID: cmd.UID, MessageIDs: ids, Origin: u.Origin}, nil
}

func decideDeleteMessages(kv KV, cmd DeleteMessages) (Event, error) {
	if err := checkIDs(cmd.IDs); err != nil {
		return nil, err
	}
	u, err := liveUser(kv, cmd.UID)
	if err != nil {
		return nil, err
	}
	ids := sortedIDs(cmd.IDs)
	for _, id := range ids {
		m, ok, err := getMsg(kv, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: message %d", ErrNotFound, id)
		}
		if err := ownView(m, cmd.UID); err != nil {
			return nil, err
		}
	}
	return &DeleteMessagesEvent{UID: cmd.UID, IDs: ids, Origin: u.Origin}, nil
}

func decideDeleteAccount(kv KV, cmd DeleteAccount) (Event, error) {
	u, err := liveUser(kv, cmd.UID)
	if err != nil {
		return nil, err
	}
	return &DeleteAccountEvent{UID: cmd.UID, Origin: u.Origin}, nil
}
