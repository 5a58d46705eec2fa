package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/netfault"
	"github.com/replichat/replichat/chat/wire"
)

// testArgs make chatd cheap to run here: cheap password hashing, and a
// failure detector tolerant of a loaded machine.
var testArgs = []string{"--argon-memory", "64", "--argon-time", "1", "--heartbeat", "100ms", "--failover-timeout", "1s"}

// waitFor polls cond every 20ms until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting until "+what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// primary returns the one replica whose hello says it is primary, or -1.
func primary(ctx context.Context, addrs []string) int {
	found := -1
	for id, a := range addrs {
		ok, err := Hello(ctx, a)
		if err != nil || ok.Role != wire.RolePrimary {
			continue
		}
		if found >= 0 {
			return -1
		}
		found = id
	}
	return found
}

// TestCluster_ProxiedPauseWipe starts three replicas behind the proxy and
// checks that the proxy carries every peer link and the client links, that
// a paused primary is replaced and answers again once resumed, that a paused
// replica still stops cleanly, and that a wiped replica restarts empty with
// the cluster secret kept.
func TestCluster_ProxiedPauseWipe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs chatd")
	}
	ctx := t.Context()
	bins, err := Build(ctx, t.TempDir())
	require.NoError(t, err)
	dir := t.TempDir()
	c, err := Start(ctx, Config{Chatd: bins.Chatd, Dir: dir, Replicas: 3, Args: testArgs, Proxied: true})
	require.NoError(t, err)
	defer func() {
		c.Close()
		if t.Failed() {
			for id := range 3 {
				t.Logf("replica %d log:\n%s", id, tail(c.LogPath(id)))
			}
		}
	}()
	p := c.Proxy()
	require.NotNil(t, p)
	assert.Equal(t, p.Addrs(), c.Addrs())
	for id := range 3 {
		assert.Equal(t, p.Target(id), c.DirectAddrs()[id])
		assert.NotEqual(t, c.Addrs()[id], c.DirectAddrs()[id])
		assert.Contains(t, c.Peers(), p.Addr(id))
	}

	first := -1
	waitFor(t, 15*time.Second, "one primary, through the proxy", func() bool {
		first = primary(ctx, c.Addrs())
		return first >= 0
	})
	waitFor(t, 10*time.Second, "every peer link goes through the proxy", func() bool {
		st := p.Stats()
		for from := range 3 {
			for to := range 3 {
				if from != to && (st[netfault.Link{From: from, To: to}].Conns == 0 || st[netfault.Link{From: from, To: to}].Bytes == 0) {
					return false
				}
			}
		}
		return st[netfault.Link{From: netfault.Client, To: first}].Conns > 0
	})

	// A paused primary is replaced; resumed, it answers again.
	require.NoError(t, c.Pause(first))
	assert.True(t, c.Paused(first))
	assert.True(t, c.Running(first))
	hctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = Hello(hctx, c.DirectAddrs()[first])
	cancel()
	assert.Error(t, err, "a paused replica does not answer")
	others := []string{}
	for id, a := range c.Addrs() {
		if id != first {
			others = append(others, a)
		}
	}
	waitFor(t, 15*time.Second, "another replica takes over", func() bool { return primary(ctx, others) >= 0 })
	require.NoError(t, c.Resume(first))
	assert.False(t, c.Paused(first))
	require.NoError(t, c.WaitReady(ctx, first))

	// A paused replica stops cleanly on SIGTERM.
	victim := (first + 1) % 3
	require.NoError(t, c.Pause(victim))
	require.NoError(t, c.Stop(victim))
	assert.False(t, c.Running(victim))
	assert.Error(t, c.Pause(victim))

	// Wipe: refused while running; afterwards the directory is gone, the
	// secret is kept, and the replica starts again (empty).
	assert.Error(t, c.Wipe(first))
	require.NoError(t, c.Wipe(victim))
	_, err = os.Stat(c.DataDir(victim))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(dir, "cluster.secret"))
	require.NoError(t, err, "the cluster secret survives a wipe")
	require.NoError(t, c.Restart(ctx, victim))
	_, err = os.Stat(c.DataDir(victim))
	assert.NoError(t, err)
	waitFor(t, 15*time.Second, "one primary again", func() bool { return primary(ctx, c.Addrs()) >= 0 })
}
