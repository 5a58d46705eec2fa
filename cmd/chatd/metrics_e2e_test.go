package main

// /readyz on real chatd processes (bench/cluster): the primary and its
// in-sync backups answer 200; a replica restarted while the others are down
// answers 503 with the reason it waits, and stays alive (/healthz 200).

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/chat/wire"
)

// e2eChatdArgs are cheap password hashing and a failure detector that
// tolerates a loaded machine, as cmd/e2e uses.
var e2eChatdArgs = []string{"--argon-memory", "64", "--argon-time", "1", "--heartbeat", "100ms", "--failover-timeout", "1s"}

// buildChatd compiles this package into dir and returns the binary's path.
func buildChatd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "chatd")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), "go build: %s", out.String())
	return bin
}

// probe is one answer of /readyz or /healthz (code 0: no answer).
type probe struct {
	code int
	body string
}

func getProbe(url string) probe {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return probe{body: err.Error()}
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return probe{code: resp.StatusCode, body: strings.TrimSpace(b.String())}
}

func TestMetricsEndpoint_ReadyzFlips(t *testing.T) {
	if testing.Short() {
		t.Skip("starts chatd processes")
	}
	dir := t.TempDir()
	bin := buildChatd(t, dir)
	metricAddrs := freeAddrs(t, 3)
	replicaArgs := map[int][]string{}
	for i, a := range metricAddrs {
		replicaArgs[i] = []string{"--metrics-addr", a}
	}
	c, err := cluster.Start(t.Context(), cluster.Config{Chatd: bin, Dir: filepath.Join(dir, "cluster"), Replicas: 3,
		Args: e2eChatdArgs, ReplicaArgs: replicaArgs})
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for id := range 3 {
				t.Logf("replica %d log: %s", id, c.LogPath(id))
			}
		}
	})
	url := func(id int, path string) string { return "http://" + metricAddrs[id] + path }
	readyz := func() []probe {
		out := make([]probe, 3)
		for id := range 3 {
			out[id] = getProbe(url(id, "/readyz"))
		}
		return out
	}

	// Once the cluster has settled: one primary, two in-sync backups, all
	// ready.
	primary := -1
	var last []probe
	require.Eventually(t, func() bool {
		last = readyz()
		primary = -1
		for id, p := range last {
			switch {
			case p.code != http.StatusOK:
				return false
			case p.body == "primary":
				primary = id
			}
		}
		return primary >= 0
	}, 30*time.Second, 50*time.Millisecond, "every replica ready: %v", last)
	t.Logf("settled: %v", last)
	for id, p := range last {
		if id != primary {
			assert.Equal(t, fmt.Sprintf("in-sync backup of primary %d", primary), p.body, "replica %d", id)
		}
		assert.Equal(t, probe{http.StatusOK, "ok"}, getProbe(url(id, "/healthz")))
	}
	register(t, c.Addrs()[primary], "ann")
	fams := scrape(t, url(primary, "/metrics"))
	assert.Equal(t, 1.0, sample(t, fams, metricRequests, "op", "register", "code", "ok").GetCounter().GetValue())
	assert.Equal(t, uint64(1), sample(t, fams, metricRequestDuration, "op", "register").GetHistogram().GetSampleCount())
	assert.Equal(t, 1.0, sample(t, fams, metricRole, "role", "primary").GetGauge().GetValue())
	assert.Equal(t, 3.0, sample(t, fams, metricISRSize).GetGauge().GetValue())
	// The hooks are wired: the registration was appended (and synced) and
	// both backups acknowledged it.
	assert.Positive(t, sample(t, fams, metricFsync).GetHistogram().GetSampleCount())
	for id := range 3 {
		if id != primary {
			assert.Equal(t, 1.0, sample(t, fams, metricBackupInSync, "replica", fmt.Sprint(id)).GetGauge().GetValue())
			assert.Positive(t, sample(t, fams, metricLag, "replica", fmt.Sprint(id)).GetHistogram().GetSampleCount())
		}
	}

	// Every replica crashes; one comes back alone. It must wait for the
	// others of its last ISR (they may hold what it lacks): not ready, and
	// saying so.
	for id := range 3 {
		require.NoError(t, c.Kill(id))
	}
	back := (primary + 1) % 3
	require.NoError(t, c.Restart(t.Context(), back))
	var p probe
	require.Eventually(t, func() bool {
		p = getProbe(url(back, "/readyz"))
		return strings.Contains(p.body, "waiting to hear from")
	}, 30*time.Second, 50*time.Millisecond, "the restarted replica says why it waits: %v", p)
	t.Logf("replica %d alone: %d %q", back, p.code, p.body)
	assert.Equal(t, http.StatusServiceUnavailable, p.code)
	assert.Contains(t, p.body, "restarted; waiting to hear from replicas")
	assert.Equal(t, probe{http.StatusOK, "ok"}, getProbe(url(back, "/healthz")), "waiting, but alive")
	fams = scrape(t, url(back, "/metrics"))
	assert.Equal(t, 0.0, sample(t, fams, metricReady).GetGauge().GetValue())
	assert.Equal(t, 0.0, sample(t, fams, metricRole, "role", "primary").GetGauge().GetValue())

	// A second one returns: the two still wait for the third (it may hold
	// acknowledged events they lack), and name it.
	other := (primary + 2) % 3
	require.NoError(t, c.Restart(t.Context(), other))
	want := fmt.Sprintf("waiting to hear from replica %d ", primary)
	require.Eventually(t, func() bool {
		p = getProbe(url(back, "/readyz"))
		return strings.Contains(p.body, want)
	}, 30*time.Second, 50*time.Millisecond, "waits for the last one: %v", p)
	t.Logf("replicas %d and %d: %d %q", back, other, p.code, p.body)
	assert.Equal(t, http.StatusServiceUnavailable, p.code)

	// With the third back, every replica is ready again.
	require.NoError(t, c.Restart(t.Context(), primary))
	require.Eventually(t, func() bool {
		last = readyz()
		for _, p := range last {
			if p.code != http.StatusOK {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "ready again: %v", last)
}

// register creates account name through the replica at addr, which must be
// the primary, with the raw protocol.
func register(t *testing.T, addr, name string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	conn := wire.NewConn(nc, 0)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = conn.Handshake(ctx, wire.Hello{Role: wire.RoleClient, ClientID: "metrics-e2e", Software: "test"})
	require.NoError(t, err)
	req, err := wire.NewRequest(2, wire.OpRegister, 1, wire.RegisterRequest{User: name, Password: "pw"})
	require.NoError(t, err)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	require.NoError(t, conn.WriteFrame(req))
	resp, err := conn.ReadFrame()
	require.NoError(t, err)
	require.Nil(t, resp.Error, "register %s", name)
}
