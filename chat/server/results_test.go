package server

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
)

func TestResultWaiters(t *testing.T) {
	var w resultWaiters
	mine := w.add("c", 1)
	require.NotNil(t, mine)
	assert.Nil(t, w.add("c", 1), "a second wait for the same request looks up instead")
	other := w.add("c", 2)
	require.NotNil(t, other)

	w.deliver(nil)
	w.deliver([]chat.AppliedResult{
		{ClientID: "c", Seq: 1, Result: chat.Result{MessageID: 10}},
		{ClientID: "d", Seq: 1, Result: chat.Result{MessageID: 11}}, // nobody waits
	})
	res, ok := w.take("c", 1, mine)
	assert.True(t, ok)
	assert.Equal(t, uint64(10), res.MessageID)

	_, ok = w.take("c", 2, other)
	assert.False(t, ok, "a request whose record stored no result gets nothing")
	_, ok = w.take("c", 1, nil)
	assert.False(t, ok, "a request that did not register gets nothing")

	assert.Empty(t, w.slots, "taking unregisters")
	assert.NotNil(t, w.add("c", 1), "the request may wait again (a retry)")
}
