package e2e

// SIGKILL of chatd while concurrent senders are mid-stream (DESIGN.md
// section 7, invariants 1, 2, 3 and 8 checked from the outside): the
// senders ride out the crash through the client library's retries, and
// afterwards every acknowledged send is in the recipient's history exactly
// once, nothing unsent is there, each sender's messages are in send order,
// and the replica's log applied each request and message id at most once.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCrash_KillDuringSends(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	const (
		nSenders = 4
		perRound = 25 // acknowledged sends per sender between crashes
		crashes  = 2
		password = "pw"
	)
	sink := newClient(t, c, "sink", password, true)
	senders := make([]*sender, nSenders)
	for i := range senders {
		name := fmt.Sprintf("sender%d", i)
		senders[i] = &sender{name: name, to: "sink", cl: newClient(t, c, name, password, true)}
	}

	stopSenders := runSenders(t, senders...)

	for round := 1; round <= crashes; round++ {
		waitAcked(t, senders, round*perRound)
		require.NoError(t, c.Kill(0))
		require.NoError(t, c.Restart(t.Context(), 0))
	}
	waitAcked(t, senders, (crashes+1)*perRound)
	stopSenders()

	ids := checkSends(t, senders, allHistory(t, sink))
	require.NotEmpty(t, ids)

	// The log, read offline after a clean stop, agrees, and replays the
	// same way twice.
	require.NoError(t, c.Stop(0))
	evs := replayEvents(t, c.DataDir(0))
	checkReplayedSends(t, evs, senders, ids)
	checkReplicasAgree(t, c)
	dups := 0
	for _, ev := range evs {
		if ev.Result == "duplicate" {
			dups++
		}
	}
	t.Logf("%d messages acknowledged across %d crashes; %d records in the log, %d of them retries skipped as duplicates",
		len(ids), crashes, len(evs), dups)

	// Restarted on its data, the replica serves the same history.
	require.NoError(t, c.Restart(t.Context(), 0))
	sink = newClient(t, c, "sink", password, false)
	assert.Equal(t, ids, checkSends(t, senders, allHistory(t, sink)))
}
