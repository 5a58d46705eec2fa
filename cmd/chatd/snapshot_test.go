package main

// Snapshots in chatd: the flags (defaults, 0, one-line errors), the
// snapshot directory in <data>/snapshots, and the start-up check of a data
// directory whose log is compacted: a damaged (or lost) chat state is
// restored from the newest local snapshot and the retained log replayed
// after it, with nothing lost; with no usable snapshot the start is
// refused with one line, and --repair starts the replica as a new member.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/shell"
)

func TestParseFlags_Snapshots(t *testing.T) {
	tests := []struct {
		name                   string
		args                   []string
		every, retain, forkRet uint64
		wantErr                string
	}{
		{name: "defaults", every: defaultSnapshotEvery, retain: defaultRetainEvents, forkRet: defaultForkRetain},
		{name: "explicit", args: []string{"--snapshot-every", "200", "--retain-events", "50", "--fork-retain", "1000"}, every: 200, retain: 50, forkRet: 1000},
		{name: "disabled", args: []string{"--snapshot-every", "0"}, every: 0, retain: defaultRetainEvents, forkRet: defaultForkRetain},
		{name: "retain nothing", args: []string{"--retain-events", "0", "--fork-retain", "0"}, every: defaultSnapshotEvery},
		{name: "negative", args: []string{"--snapshot-every", "-1"}, wantErr: `invalid value "-1" for flag -snapshot-every`},
		{name: "not a number", args: []string{"--retain-events", "many"}, wantErr: `invalid value "many" for flag -retain-events`},
		{name: "retain without snapshots", args: []string{"--snapshot-every", "0", "--retain-events", "10"},
			wantErr: "--retain-events has no effect with --snapshot-every 0"},
		{name: "fork-retain without snapshots", args: []string{"--snapshot-every", "0", "--fork-retain", "10"},
			wantErr: "--fork-retain has no effect with --snapshot-every 0"},
		{name: "huge", args: []string{"--fork-retain", "18446744073709551615"}, wantErr: "--fork-retain 18446744073709551615 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			cfg, err := parseFlags(append([]string{"--data", t.TempDir()}, tt.args...), io.Discard, &stderr)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, errUsage)
				assert.Contains(t, stderr.String(), tt.wantErr)
				assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line")
				return
			}
			require.NoError(t, err, stderr.String())
			assert.Equal(t, tt.every, cfg.snapshotEvery)
			assert.Equal(t, tt.retain, cfg.retainEvents)
			assert.Equal(t, tt.forkRet, cfg.forkRetain)
		})
	}
}

// runReplica runs a one-replica chatd in-process on data until stop is
// called (a clean shutdown), failing the test if it cannot start.
func runReplica(t *testing.T, addr, data string, extra ...string) (stop func()) {
	t.Helper()
	args := append([]string{"--id", "0", "--data", data, "--listen", addr, "--argon-memory", "64", "--argon-time", "1",
		"--disk-reserve", "0"}, extra...)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	logs := &syncBuf{}
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	c := newTestClient(t, addr)
	defer c.Close()
	for {
		cctx, ccancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		_, err := c.Status(cctx)
		ccancel()
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("chatd exited: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return func() {
		cancel()
		require.NoError(t, <-done, logs.String())
	}
}

// syncBuf is a buffer for a replica's log, written by its goroutines.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Servers: []string{addr}, FailoverTimeout: 10 * time.Second})
	require.NoError(t, err)
	return c
}

// bodies reads the whole history of user, bodies in order.
func bodies(t *testing.T, addr, user string) []string {
	t.Helper()
	c := newTestClient(t, addr)
	defer c.Close()
	_, err := c.Login(t.Context(), user, "pw")
	require.NoError(t, err)
	var out []string
	var after uint64
	for {
		page, next, err := c.History(t.Context(), "", after, 100)
		require.NoError(t, err)
		for _, m := range page {
			out = append(out, m.Body)
		}
		if next == 0 {
			return out
		}
		after = next
	}
}

func TestStart_DamagedStateWithCompactedLogIsRestoredFromTheSnapshot(t *testing.T) {
	data := filepath.Join(t.TempDir(), "0")
	addr := freeAddrs(t, 1)[0]
	flags := []string{"--snapshot-every", "20", "--retain-events", "5"}
	stop := runReplica(t, addr, data, flags...)
	c := newTestClient(t, addr)
	require.NoError(t, c.Register(t.Context(), "ann", "pw"))
	require.NoError(t, c.Register(t.Context(), "bob", "pw"))
	_, err := c.Login(t.Context(), "ann", "pw")
	require.NoError(t, err)
	var want []string
	for i := range 60 {
		body := fmt.Sprintf("message %d", i)
		_, err := c.Send(t.Context(), "bob", body)
		require.NoError(t, err)
		want = append(want, body)
	}
	require.NoError(t, c.Close())
	stop()

	logFirst := func() eventlog.Offset {
		l, err := eventlog.OpenBadger(filepath.Join(data, logDir), eventlog.BadgerOptions{ReadOnly: true})
		require.NoError(t, err)
		defer l.Close()
		return l.First()
	}
	require.Greater(t, logFirst(), eventlog.Offset(1), "the log is compacted")
	snaps, err := shell.Snapshots(filepath.Join(data, snapshotsDir))
	require.NoError(t, err)
	require.NotEmpty(t, snaps, "snapshots are kept in <data>/%s", snapshotsDir)

	// The state's MANIFEST damaged: the state is moved aside, and cannot be
	// rebuilt from the compacted log.
	damage := func() {
		require.NoError(t, os.WriteFile(filepath.Join(data, stateDir, "MANIFEST"), []byte("garbage"), 0o644))
	}
	damage()
	var logs bytes.Buffer
	cfg := config{id: 0, dataDir: data, peers: map[uint32]string{0: addr}}
	require.NoError(t, openDir(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(d *checkedData) {
		assert.GreaterOrEqual(t, d.state.Applied()+1, d.log.First(), "the log continues the restored state")
	}))
	assert.Contains(t, logs.String(), `msg="the chat state is behind the compacted log: restored it from the newest local snapshot`)

	// The replica serves it all, nothing lost: the snapshot plus the
	// retained log replayed after it. (The check above restored the state
	// already; damage it again for a start of the whole process.)
	damage()
	stop = runReplica(t, addr, data, flags...)
	assert.Equal(t, want, bodies(t, addr, "ann"))
	stop()

	// No snapshot left: the start is refused with one line; --repair makes
	// it a new member (here, alone, empty).
	damage()
	require.NoError(t, os.RemoveAll(filepath.Join(data, snapshotsDir)))
	first := logFirst()
	err = openDir(t, cfg, discardLogger(), nil)
	var de *damagedError
	require.ErrorAs(t, err, &de)
	assert.NotContains(t, err.Error(), "\n")
	assert.Contains(t, err.Error(), fmt.Sprintf("its chat state was damaged and its log is compacted up to offset %d, so it cannot be rebuilt from the log; no snapshot is kept in %s",
		first-1, filepath.Join(data, snapshotsDir)))
	require.NoError(t, openDir(t, config{id: 0, dataDir: data, peers: cfg.peers, repair: true}, discardLogger(), func(d *checkedData) {
		assert.Zero(t, d.log.Last(), "a new member")
	}))
}
