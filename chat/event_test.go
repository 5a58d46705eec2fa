package chat_test

// Goal: events round-trip through their record encoding, unknown or
// malformed payloads are errors (never panics), and the encoding is
// deterministic (the same event, the same bytes).

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
)

func TestEncodeEvent_RoundTrip(t *testing.T) {
	tests := []struct {
		ev   chat.Event
		want string
	}{
		{&chat.RegisterEvent{Name: "ann", PasswordHash: "$argon2id$x"}, chat.TypeRegister},
		{&chat.SendEvent{MessageID: 7, FromUID: 1, ToUID: 2, Body: "hi"}, chat.TypeSend},
		{&chat.DeliverEvent{UID: 2, MessageIDs: []uint64{7, 9}}, chat.TypeDeliver},
		{&chat.DeleteMessagesEvent{UID: 2, IDs: []uint64{7}}, chat.TypeDeleteMessages},
		{&chat.DeleteAccountEvent{UID: 3}, chat.TypeDeleteAccount},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			typ, data, err := chat.EncodeEvent(tt.ev)
			require.NoError(t, err)
			assert.Equal(t, tt.want, typ)
			_, again, err := chat.EncodeEvent(tt.ev)
			require.NoError(t, err)
			assert.Equal(t, data, again, "encoding must be deterministic")
			got, err := chat.DecodeEvent(typ, data)
			require.NoError(t, err)
			assert.Equal(t, tt.ev, got)
		})
	}
}

func TestDecodeEvent_Errors(t *testing.T) {
	_, valid, err := chat.EncodeEvent(&chat.SendEvent{MessageID: 1, Body: "x"})
	require.NoError(t, err)
	tests := []struct {
		name, typ string
		data      []byte
	}{
		{"unknown type", "chat.nope", valid},
		{"empty type", "", valid},
		{"garbage", chat.TypeSend, []byte{0xc1}},
		{"truncated", chat.TypeSend, valid[:len(valid)-2]},
		{"wrong shape", chat.TypeDeliver, []byte{0xa3, 'a', 'b', 'c'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chat.DecodeEvent(tt.typ, tt.data)
			require.Error(t, err)
			assert.ErrorIs(t, err, chat.ErrInvalidArgument)
		})
	}
}

// FuzzDecodeEvent checks that no payload makes DecodeEvent panic, and that
// whatever it accepts re-encodes to something it decodes to the same event.
func FuzzDecodeEvent(f *testing.F) {
	for _, ev := range []chat.Event{
		&chat.RegisterEvent{Name: "ann", PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$a2V5"},
		&chat.SendEvent{MessageID: 1 << 40, FromUID: 1, ToUID: 2, Body: "hello"},
		&chat.DeliverEvent{UID: 2, MessageIDs: []uint64{1, 2, 3}},
		&chat.DeleteMessagesEvent{UID: 2, IDs: []uint64{5}},
		&chat.DeleteAccountEvent{UID: 9},
	} {
		typ, data, err := chat.EncodeEvent(ev)
		require.NoError(f, err)
		f.Add(typ, data)
	}
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		ev, err := chat.DecodeEvent(typ, data)
		if err != nil {
			return
		}
		typ2, data2, err := chat.EncodeEvent(ev)
		require.NoError(t, err)
		assert.Equal(t, typ, typ2)
		ev2, err := chat.DecodeEvent(typ2, data2)
		require.NoError(t, err)
		assert.Equal(t, ev, ev2)
	})
}
