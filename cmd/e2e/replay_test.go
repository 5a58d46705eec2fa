package e2e

// chatreplay on a real replica's data directory: refused clearly while
// the replica runs; after a clean stop it exits 0, its offsets are dense
// from 1, and two replays print the same bytes and the same state digest
// (whether the scratch state is on disk or in memory), at the end and at
// an intermediate offset.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplay_DataDir(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	users := []string{"ann", "bob", "cid"}
	for _, u := range users {
		mustChat[userJSON](t, c, u, "pw-"+u, "register")
	}
	cl := newClient(t, c, "ann", "pw-ann", false)
	for i := range 30 {
		_, err := cl.Send(t.Context(), users[i%3], fmt.Sprintf("message %d", i))
		require.NoError(t, err)
	}
	read := mustChat[messageJSON](t, c, "bob", "pw-bob", "read", "--limit", "4")
	require.Len(t, read, 4)
	mustChat[deletedJSON](t, c, "bob", "pw-bob", "delete-messages", fmt.Sprint(read[0].ID))
	mustChat[accountDeletedJSON](t, c, "cid", "pw-cid", "delete-account")
	mustChat[userJSON](t, c, "cid", "pw-cid2", "register")

	// While chatd runs, the directory is locked.
	res := runBinary(t, nil, bins.Chatreplay, "--data", c.DataDir(0))
	assert.Equal(t, 1, res.code)
	assert.Empty(t, res.stdout)
	assert.Equal(t, 1, strings.Count(res.stderr, "\n"), "one line: %q", res.stderr)
	assert.Contains(t, res.stderr, "in use by a running replica")

	require.NoError(t, c.Stop(0))
	evs := replayEvents(t, c.DataDir(0))
	require.NotEmpty(t, evs)
	last := evs[len(evs)-1].Offset
	types := make(map[string]int)
	for _, ev := range evs {
		types[ev.Type]++
	}
	assert.Equal(t, 4, types["chat.register"])
	assert.Equal(t, 30, types["chat.send"])
	assert.Equal(t, 1, types["chat.delete_account"])
	assert.Positive(t, types["replica.epoch"])

	// Determinism: the same bytes twice, and the same state on disk and in
	// memory.
	assert.Equal(t, replay(t, c.DataDir(0)).stdout, replay(t, c.DataDir(0), "--mem").stdout)
	end := replayState(t, c.DataDir(0))
	assert.Equal(t, end, replayState(t, c.DataDir(0), "--mem"))
	assert.Equal(t, last, end.Applied)
	assert.Equal(t, uint64(3), end.Accounts)
	mid := replayState(t, c.DataDir(0), "--to", fmt.Sprint(last/2))
	assert.Equal(t, mid, replayState(t, c.DataDir(0), "--to", fmt.Sprint(last/2), "--mem"))
	assert.Equal(t, last/2, mid.Applied)
	assert.NotEqual(t, end.Digest, mid.Digest)

	// The user filter tells the two accounts named cid apart.
	var regs []replayRegister
	for _, l := range replay(t, c.DataDir(0), "--json", "--user", "cid", "--type", "register").lines(t) {
		var r replayRegister
		require.NoError(t, json.Unmarshal(l, &r))
		regs = append(regs, r)
	}
	require.Len(t, regs, 2)
	for _, r := range regs {
		assert.Equal(t, "cid", r.Name)
		assert.Equal(t, "<redacted>", r.PasswordHash)
	}
	assert.NotEqual(t, regs[0].UID, regs[1].UID)

	// After a crash (SIGKILL), the directory is still readable, and holds
	// the acknowledged send made just before.
	require.NoError(t, c.Restart(t.Context(), 0))
	require.Equal(t, 0, waitPrimary(t, c))
	m, err := newClient(t, c, "bob", "pw-bob", false).Send(t.Context(), "ann", "last words")
	require.NoError(t, err)
	require.NoError(t, c.Kill(0))
	evs = replayEvents(t, c.DataDir(0))
	sends := slices.DeleteFunc(evs, func(ev replayEvent) bool { return ev.Type != "chat.send" })
	require.NotEmpty(t, sends)
	lastSend := sends[len(sends)-1]
	assert.Equal(t, m.ID, lastSend.ID)
	assert.Equal(t, "last words", lastSend.Body)
	assert.Equal(t, "ok", lastSend.Result)
}

// replayRegister is a chat.register line of chatreplay --json.
type replayRegister struct {
	Name         string `json:"name"`
	UID          uint64 `json:"uid"`
	PasswordHash string `json:"password_hash"`
}
