package bench

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/chat/client"
)

// The ids a user holds under Options.Keep leave oldest first, a batch at a
// time, and only beyond keep.
func TestHeld_TakeOldest(t *testing.T) {
	var h held
	for id := range uint64(12) {
		h.add(id + 1)
	}
	assert.Nil(t, h.takeOldest(10, 3), "12 held: not more than keep+batch")
	h.add(13)
	assert.Equal(t, []uint64{1, 2, 3}, h.takeOldest(10, 3))
	assert.Nil(t, h.takeOldest(10, 3), "10 left")
	h.add(14, 15, 16)
	assert.Equal(t, []uint64{4, 5, 6}, h.takeOldest(10, 3))
	assert.Len(t, h.ids, 10)
}

// A copy held twice (a push delivered again across a failover) fails the
// all-or-none delete with not_found; deleteOldest then deletes the batch
// one id at a time, skipping the copy already gone, instead of ending the
// run.
func TestDeleteOldest_SkipsCopiesAlreadyGone(t *testing.T) {
	chatd := buildChatd(t)
	ctx := t.Context()
	c, err := cluster.Start(ctx, cluster.Config{Chatd: chatd, Dir: t.TempDir(), Replicas: 1, Args: cheapArgon()})
	require.NoError(t, err)
	defer c.Close()
	users, err := connectUsers(ctx, c.Addrs(), 2, 0, client.Config{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer closeUsers(users)
	u := users[0]
	send := func(n int) {
		for range n {
			m, err := u.c.Send(ctx, users[1].name, "hello")
			require.NoError(t, err)
			u.held.add(m.ID)
		}
	}
	send(deleteBatch)
	gone := u.held.ids[0]
	n, err := deleteOldest(ctx, u, 0)
	require.NoError(t, err)
	require.Equal(t, deleteBatch, n)

	// The next batch holds a copy the first one deleted.
	u.held.add(gone)
	send(deleteBatch - 1)
	n, err = deleteOldest(ctx, u, 0)
	require.NoError(t, err)
	assert.Equal(t, deleteBatch-1, n, "every copy deleted once, the one already gone skipped")
	assert.Empty(t, u.held.ids)
	_, err = u.c.DeleteMessages(ctx, []uint64{gone})
	assert.True(t, notFound(err), "not_found is what the server answers for a copy gone: %v", err)
}
