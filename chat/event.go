package chat

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Record types of chat events. Every chat event's type starts with
// TypePrefix; Apply leaves records of other types (the replica layer's) to
// their owner.
const (
	TypePrefix         = "chat."
	TypeRegister       = "chat.register"
	TypeSend           = "chat.send"
	TypeDeliver        = "chat.deliver"
	TypeDeleteMessages = "chat.delete_messages"
	TypeDeleteAccount  = "chat.delete_account"
)

// Event is a decided change to the chat state: the payload of one log
// record. Events are plain structs with explicit msgpack names and no maps,
// so their encoding is deterministic. The msgpack names are part of the
// on-disk format.
type Event interface {
	// Type is the record type that carries this event.
	Type() string
}

// RegisterEvent creates an account. The user id is assigned at apply time
// from a counter in the state, so it is the same on every replica that
// applied the same log (but not on both sides of a forked one: see the
// origins in origin.go).
type RegisterEvent struct {
	Name string `msgpack:"name"`
	// PasswordHash is the PHC-encoded argon2id hash, never the password.
	PasswordHash string `msgpack:"hash"`
	// Origin: the account takes AccountOrigin of the record's (client id,
	// seq) as its identity across forks. Decide always sets it; events
	// written before origins existed lack it, and their accounts have no
	// origin, as they had none when those logs were first applied.
	Origin bool `msgpack:"o,omitempty"`
}

// SendEvent sends a message. Sender and recipient are accounts resolved at
// decide time, each named by its user id there and its origin (0: none;
// see origin.go): if either account is deleted (and its name perhaps
// re-used) before the event applies, or does not exist on this side of a
// forked log, the send is rejected rather than misdelivered.
type SendEvent struct {
	// MessageID is assigned by the primary (MessageID of the request), so
	// a re-submitted send keeps it. Apply stores the message under it, or
	// under the next free id of its probe sequence if it is taken.
	MessageID uint64 `msgpack:"id"`
	FromUID   uint64 `msgpack:"from"`
	ToUID     uint64 `msgpack:"to"`
	Body      string `msgpack:"body"`
	// FromOrigin and ToOrigin are the accounts' origins.
	FromOrigin uint64 `msgpack:"from_o,omitempty"`
	ToOrigin   uint64 `msgpack:"to_o,omitempty"`
}

// DeliverEvent marks messages in the unread queue of the account UID
// (origin Origin) as delivered.
type DeliverEvent struct {
	UID        uint64 `msgpack:"uid"`
	MessageIDs IDList `msgpack:"ids"` // sorted, unique
	Origin     uint64 `msgpack:"o,omitempty"`
}

// DeleteMessagesEvent deletes the view of the account UID (origin Origin)
// of messages it sent or received.
type DeleteMessagesEvent struct {
	UID    uint64 `msgpack:"uid"`
	IDs    IDList `msgpack:"ids"` // sorted, unique
	Origin uint64 `msgpack:"o,omitempty"`
}

// DeleteAccountEvent deletes the account UID (origin Origin).
type DeleteAccountEvent struct {
	UID    uint64 `msgpack:"uid"`
	Origin uint64 `msgpack:"o,omitempty"`
}

// IDList is a list of message ids in an event. It decodes itself so that a
// corrupt length cannot make the decoder allocate more than
// MaxIDsPerCommand ids (msgpack v5.4.1 does not bound []uint64 allocations).
type IDList []uint64

// DecodeMsgpack implements msgpack.CustomDecoder.
func (l *IDList) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		*l = nil
		return nil
	}
	if n > MaxIDsPerCommand {
		return fmt.Errorf("%d ids, limit %d", n, MaxIDsPerCommand)
	}
	ids := make(IDList, n)
	for i := range ids {
		if ids[i], err = dec.DecodeUint64(); err != nil {
			return err
		}
	}
	*l = ids
	return nil
}

// Type implements Event.
func (*RegisterEvent) Type() string { return TypeRegister }

// Type implements Event.
func (*SendEvent) Type() string { return TypeSend }

// Type implements Event.
func (*DeliverEvent) Type() string { return TypeDeliver }

// Type implements Event.
func (*DeleteMessagesEvent) Type() string { return TypeDeleteMessages }

// Type implements Event.
func (*DeleteAccountEvent) Type() string { return TypeDeleteAccount }

// EncodeEvent returns the record type and payload that carry ev.
func EncodeEvent(ev Event) (typ string, data []byte, err error) {
	data, err = encodeValue(ev)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s event: %w", ev.Type(), err)
	}
	return ev.Type(), data, nil
}

// DecodeEvent parses the payload of a record of type typ. An unknown chat
// type or a malformed payload is an error wrapping ErrInvalidArgument.
func DecodeEvent(typ string, data []byte) (Event, error) {
	var ev Event
	switch typ {
	case TypeRegister:
		ev = new(RegisterEvent)
	case TypeSend:
		ev = new(SendEvent)
	case TypeDeliver:
		ev = new(DeliverEvent)
	case TypeDeleteMessages:
		ev = new(DeleteMessagesEvent)
	case TypeDeleteAccount:
		ev = new(DeleteAccountEvent)
	default:
		return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalidArgument, typ)
	}
	if err := decodeValue(data, ev); err != nil {
		return nil, fmt.Errorf("%w: decode %s event: %v", ErrInvalidArgument, typ, err)
	}
	return ev, nil
}
