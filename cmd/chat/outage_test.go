// The acceptance test of the long-lived clients against real replicas:
// listen and the interactive session ride out a 45s outage of the whole
// cluster (longer than the failover timeout), say so once each way, and
// receive the next message.
package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/chat/client"
)

// outageLength is how long every replica stays down: longer than the
// client's default failover timeout, after which one-shot commands give up.
const outageLength = 45 * time.Second

func TestOutage_ListenAndSessionRideItOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real chatd processes through a 45s outage")
	}
	require.Greater(t, outageLength, client.DefaultFailoverTimeout)
	dir := t.TempDir()
	chatd := filepath.Join(dir, "chatd")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", chatd, "github.com/replichat/replichat/cmd/chatd")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build chatd: %s", out)
	cl, err := cluster.Start(t.Context(), cluster.Config{Chatd: chatd, Dir: filepath.Join(dir, "cluster"), Replicas: 3,
		Args: []string{"--argon-memory", "64", "--argon-time", "1", "--heartbeat", "100ms", "--failover-timeout", "1s"}})
	require.NoError(t, err)
	t.Cleanup(func() {
		cl.Close()
		if t.Failed() {
			for id := range 3 {
				t.Logf("replica %d log:\n%s", id, tail(cl.LogPath(id)))
			}
		}
	})

	env := map[string]string{"CHAT_SERVERS": cl.Servers(), "CHAT_PASSWORD": "pw"}
	getenv := func(k string) string { return env[k] }
	c, err := client.Dial(t.Context(), client.Config{Servers: cl.Addrs()})
	require.NoError(t, err)
	defer c.Close()
	for _, u := range []string{"alice", "bob", "carol"} {
		require.NoError(t, c.Register(t.Context(), u, "pw"))
	}
	_, err = c.Login(t.Context(), "alice", "pw")
	require.NoError(t, err)

	// bob listens; carol is in an interactive session on a terminal.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var listenOut, listenErr syncBuffer
	listenDone := make(chan error, 1)
	go func() {
		a := &app{stdin: strings.NewReader(""), stdout: &listenOut, stderr: &listenErr, getenv: getenv}
		listenDone <- a.main(ctx, []string{"--user", "bob", "listen"})
	}()
	h := &harness{t: t, env: env}
	typeKeys, screen, _, sessionDone := startTerminalSession(t, h, "--user", "carol")
	waitFor(t, screen, "carol> ")
	_, err = c.Send(t.Context(), "bob", "before")
	require.NoError(t, err)
	_, err = c.Send(t.Context(), "carol", "before")
	require.NoError(t, err)
	waitFor(t, &listenOut, "alice -> bob: before")
	waitFor(t, screen, "alice -> carol: before")

	for id := range 3 {
		require.NoError(t, cl.Kill(id))
	}
	waitFor(t, &listenErr, "chat: the cluster is unavailable, still trying: replicas 0, 1, 2: down (connection refused)")
	waitFor(t, screen, "chat: the cluster is unavailable, still trying")
	time.Sleep(outageLength)
	for id := range 3 {
		require.NoError(t, cl.Restart(t.Context(), id))
	}
	_, err = c.Send(t.Context(), "bob", "after the outage")
	require.NoError(t, err)
	_, err = c.Send(t.Context(), "carol", "after the outage")
	require.NoError(t, err)
	waitFor(t, &listenOut, "alice -> bob: after the outage")
	waitFor(t, screen, "alice -> carol: after the outage")
	waitFor(t, &listenErr, "chat: the cluster is available again")
	waitFor(t, screen, "chat: the cluster is available again")

	select {
	case err := <-listenDone:
		t.Fatalf("listen ended: %v", err)
	case err := <-sessionDone:
		t.Fatalf("the session ended: %v", err)
	default:
	}
	typeKeys("quit\r")
	require.NoError(t, <-sessionDone)
	cancel()
	require.NoError(t, <-listenDone)
	assert.Equal(t, 2, strings.Count(listenErr.String(), "\n"), "one line each way: %q", listenErr.String())
}

// tail returns the end of a file, for a failed test's log.
func tail(path string) string {
	out, _ := exec.Command("tail", "-c", "4096", path).Output()
	return string(bytes.TrimSpace(out))
}
