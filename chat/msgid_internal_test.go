package chat

// Goal: the probe sequence is deterministic and bounded: a send whose every
// candidate is taken is rejected (ErrMessageExists), never stored over
// another message; and the re-submission check walks the same sequence,
// telling a colliding message from the send's own.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNextMessageID(t *testing.T) {
	assert.NotZero(t, nextMessageID(0), "0 is not a fixed point")
	id := MessageID("c", 1)
	seen := map[uint64]bool{id: true}
	for range 1000 {
		id = nextMessageID(id)
		require.NotZero(t, id)
		require.Less(t, id, uint64(1)<<53)
		require.False(t, seen[id], "a short cycle")
		seen[id] = true
	}
}

func TestPlaceMessage_Exhausted(t *testing.T) {
	store := NewMemStore()
	first := MessageID("c", 1)
	require.NoError(t, store.Update(func(kv KV) error {
		if err := putRec(kv, userKey(1), &userRec{ID: 1, Name: "u"}); err != nil {
			return err
		}
		id := first
		for range maxIDProbes {
			if err := putRec(kv, msgKey(id), &msgRec{ID: id, From: 1, To: 1, Body: "other"}); err != nil {
				return err
			}
			id = nextMessageID(id)
		}
		return nil
	}))
	require.NoError(t, store.View(func(kv KV) error {
		_, err := placeMessage(kv, first)
		assert.ErrorIs(t, err, ErrMessageExists)
		assert.NotEqual(t, CodeInternal, Code(err), "a rejection, not a failure")

		dup, err := sendApplied(kv, &SendEvent{MessageID: first, FromUID: 1, ToUID: 1, Body: "mine"})
		require.NoError(t, err)
		assert.False(t, dup, "other messages on the probe sequence are not this send")
		return nil
	}))
	// The send's own message, probed past a collision, is found.
	require.NoError(t, store.Update(func(kv KV) error {
		id := nextMessageID(first)
		return putRec(kv, msgKey(id), &msgRec{ID: id, From: 1, To: 1, Body: "mine"})
	}))
	require.NoError(t, store.View(func(kv KV) error {
		dup, err := sendApplied(kv, &SendEvent{MessageID: first, FromUID: 1, ToUID: 1, Body: "mine"})
		require.NoError(t, err)
		assert.True(t, dup)
		return nil
	}))
}
