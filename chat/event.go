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
// from a counter in the state, so it is the same on every replica.
type RegisterEvent struct {
	Name string `msgpack:"name"`
	// PasswordHash is the PHC-encoded argon2id hash, never the password.
	PasswordHash string `msgpack:"hash"`
}

// SendEvent sends a message. Sender and recipient are user ids resolved at
// decide time: if either account is deleted (and its name perhaps re-used)
// before the event applies, the send is rejected rather than misdelivered.
type SendEvent struct {
	// MessageID is assigned by the primary, so a re-submitted send keeps it.
	MessageID uint64 `msgpack:"id"`
	FromUID   uint64 `msgpack:"from"`
	ToUID     uint64 `msgpack:"to"`
	Body      string `msgpack:"body"`
}

// DeliverEvent marks messages in UID's unread queue as delivered.
type DeliverEvent struct {
	UID        uint64 `msgpack:"uid"`
	MessageIDs IDList `msgpack:"ids"` // sorted, unique
}

// DeleteMessagesEvent deletes UID's view of messages it sent or received.
type DeleteMessagesEvent struct {
	UID uint64 `msgpack:"uid"`
	IDs IDList `msgpack:"ids"` // sorted, unique
}

// DeleteAccountEvent deletes the account UID.
type DeleteAccountEvent struct {
	UID uint64 `msgpack:"uid"`
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
