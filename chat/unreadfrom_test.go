package chat_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

// UnreadFrom is what a pusher scans with, starting past what it knows left
// the queue; on Badger that skips the deletion markers of delivered messages.
func TestState_UnreadFrom(t *testing.T) {
	stores := map[string]func(t *testing.T) chat.Store{
		"memory": func(*testing.T) chat.Store { return chat.NewMemStore() },
		"badger": func(t *testing.T) chat.Store { return chatdb.New(openBadger(t)) },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, open(t))
			ann, bob := h.register("ann"), h.register("bob")
			m1 := h.send(ann, "bob", "one")
			m2 := h.send(ann, "bob", "two")
			m3 := h.send(ann, "bob", "three")
			all, err := h.st.Unread(bob, 10)
			require.NoError(t, err)
			require.Equal(t, []uint64{m1, m2, m3}, ids(all))
			o1, o2, o3 := all[0].Offset, all[1].Offset, all[2].Offset

			from0, err := h.st.UnreadFrom(bob, 0, 10)
			require.NoError(t, err)
			assert.Equal(t, all, from0, "from 0 is the whole queue")
			got, err := h.st.UnreadFrom(bob, o2, 10)
			require.NoError(t, err)
			assert.Equal(t, []uint64{m2, m3}, ids(got), "from is inclusive")
			got, err = h.st.UnreadFrom(bob, o1+1, 1)
			require.NoError(t, err)
			assert.Equal(t, []uint64{m2}, ids(got), "limited")
			got, err = h.st.UnreadFrom(bob, o3+1, 10)
			require.NoError(t, err)
			assert.Empty(t, got)
			got, err = h.st.UnreadFrom(ann, 0, 10)
			require.NoError(t, err)
			assert.Empty(t, got, "another user's queue is not scanned into")

			_, err = h.exec("c", 1000, chat.Deliver{UID: bob, MessageIDs: []uint64{m1, m2}})
			require.NoError(t, err)
			got, err = h.st.UnreadFrom(bob, 0, 10)
			require.NoError(t, err)
			assert.Equal(t, []uint64{m3}, ids(got), "delivered messages are gone")
			got, err = h.st.UnreadFrom(bob, eventlog.Offset(o3), 10)
			require.NoError(t, err)
			assert.Equal(t, []uint64{m3}, ids(got))
			_, err = h.st.UnreadFrom(bob, 0, chat.MaxQueryLimit+1)
			assert.ErrorIs(t, err, chat.ErrInvalidArgument)
		})
	}
}
