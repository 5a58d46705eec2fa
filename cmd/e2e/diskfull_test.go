package e2e

// A full disk is an expected condition, not a crash (DESIGN.md section 3,
// CONTRACT.md). Three real chatd processes under a load of senders:
//
//   - TestDiskFull_Failpoint: each replica's guard reads its free space from
//     a file of the test's (REPLICHAT_DISK_FREE_FILE). The primary's disk
//     fills (it hands over), then a backup's, then the last writer's (writes
//     are refused with a typed error naming the replica and its free space,
//     reads are still served), then all have room again; and a replica
//     started on a full disk starts, takes no writes, and catches up once
//     there is room.
//   - TestDiskFull_Tmpfs: one replica's data directory is on a real, small
//     filesystem (a tmpfs, when the test may mount one), filled with a big
//     file until its guard trips.
//
// Each checks: no crash (no SIGBUS, no panic), `unavailable` with "disk
// nearly full on replica N" for writes nobody can take, reads served,
// `chat status` naming the replica and its free space, one log line per
// change; and after recovery every acknowledged send present exactly once
// and the three logs identical.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// Log lines of the disk guard (replica/shell/disk.go), one per change.
const (
	diskFullLine = "disk nearly full: not taking writes until there is room"
	diskRoomLine = "disk has room again: taking writes"
)

func TestDiskFull_Failpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const roomy = 10 << 30
	free := make([]string, 3)
	env := make(map[int][]string)
	for id := range free {
		free[id] = filepath.Join(dir, fmt.Sprintf("free-%d", id))
		setFree(t, free[id], roomy)
		env[id] = []string{"REPLICHAT_DISK_FREE_FILE=" + free[id]}
	}
	r := startLoaded(t, cluster.Config{Replicas: 3, Dir: filepath.Join(dir, "cluster"), ReplicaEnv: env,
		Args: []string{"--disk-reserve", "64"}}, 3)
	c := r.c
	watch := watchCluster(t, c)
	probe := newProbe(t, c, "prober", true)
	fulls := make([]int, 3) // times each replica's disk was made full
	fill := func(id int, mib int64) {
		setFree(t, free[id], mib<<20)
		fulls[id]++
		want := fmt.Sprintf("disk nearly full on replica %d: %d MiB free, reserve 64 MiB", id, mib)
		waitUntil(t, fmt.Sprintf("replica %d reports its full disk", id), func() bool {
			st, ok := ownStatus(t, c, id)
			return ok && strings.Contains(st.DiskFull, want)
		})
	}
	r.progress(50)

	// The primary's disk fills: it hands over to a backup that can write.
	p := waitPrimary(t, c)
	fill(p, 10)
	waitUntil(t, fmt.Sprintf("a replica other than %d is primary", p), func() bool { return waitPrimary(t, c) != p })
	q := waitPrimary(t, c)
	r.progress(30)

	// A backup's disk fills: it leaves the in-sync set; q writes alone.
	b := 3 - p - q
	fill(b, 20)
	waitUntil(t, fmt.Sprintf("replica %d leaves the in-sync set", b), func() bool {
		st, ok := ownStatus(t, c, q)
		return ok && !inSync(t, c, q, b) && st.Role == wire.RolePrimary
	})
	r.progress(30)

	// The last writer's disk fills: writes get a typed error naming it,
	// reads are still served, and status names every full replica.
	fill(q, 30)
	err := sendRefused(t, probe, "while the disks are full")
	assert.Contains(t, err.Message, fmt.Sprintf("disk nearly full on replica %d: 30 MiB free", q))
	assert.NotEmpty(t, allHistory(t, r.sink), "reads are served")
	status := runBinary(t, nil, bins.Chat, "--servers", c.Servers(), "--json", "status")
	for _, s := range decodeLines[statusJSON](t, status.lines(t)) {
		assert.Contains(t, s.DiskFull, fmt.Sprintf("disk nearly full on replica %d", s.ID), "chat status --json: %s", status.stdout)
	}
	human := runBinary(t, nil, bins.Chat, "--servers", c.Servers(), "status")
	assert.Contains(t, human.stdout, fmt.Sprintf("disk nearly full on replica %d: 30 MiB free, reserve 64 MiB", q), "chat status")

	// Room again everywhere: the service resumes by itself.
	for id := range 3 {
		setFree(t, free[id], roomy)
	}
	r.progress(50)
	waitHealthy(t, c)

	// A replica started on a full disk starts and takes no writes; the
	// others serve; once there is room it catches up.
	s := (waitPrimary(t, c) + 1) % 3
	require.NoError(t, c.Stop(s))
	setFree(t, free[s], 5<<20)
	fulls[s]++
	require.NoError(t, c.Restart(t.Context(), s), "a replica starts on a full disk")
	waitUntil(t, fmt.Sprintf("replica %d, started on a full disk, says so", s), func() bool {
		st, ok := ownStatus(t, c, s)
		return ok && strings.Contains(st.DiskFull, fmt.Sprintf("disk nearly full on replica %d: 5 MiB free", s))
	})
	r.progress(30)
	st, _ := ownStatus(t, c, s)
	assert.NotEqual(t, wire.RolePrimary, st.Role)
	assert.False(t, inSync(t, c, waitPrimary(t, c), s), "replica %d, full, is not in sync", s)
	setFree(t, free[s], roomy)
	waitHealthy(t, c)
	r.progress(20)

	watch.stop()
	assert.Empty(t, allHistory(t, probe), "a send refused for a full disk is never applied")
	r.finish()
	for id := range 3 {
		log := tailFile(c.LogPath(id), 64<<20)
		noCrashOutput(t, log)
		assert.Equal(t, fulls[id], strings.Count(log, diskFullLine), "replica %d: one WARN per disk that filled", id)
		assert.Equal(t, fulls[id], strings.Count(log, diskRoomLine), "replica %d: one line per disk with room again", id)
	}
}

func TestDiskFull_Tmpfs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); TestDiskFull_Failpoint covers the same logic with the unprivileged failpoint",
			err, strings.TrimSpace(string(out)))
	}
	// Registered before the cluster's cleanup, so it runs after it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	// Replica 0's data directory is on the tmpfs (its path in the cluster
	// directory a symlink there); the others have no guard.
	const x = 0
	clusterDir := filepath.Join(dir, "cluster")
	require.NoError(t, os.MkdirAll(filepath.Join(mnt, "0"), 0o755))
	require.NoError(t, os.MkdirAll(clusterDir, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(mnt, "0"), filepath.Join(clusterDir, "0")))
	r := startLoaded(t, cluster.Config{Replicas: 3, Dir: clusterDir,
		Args: []string{"--disk-reserve", "0"}, ReplicaArgs: map[int][]string{x: {"--disk-reserve", "64"}}}, 3)
	c := r.c
	probe := newProbe(t, c, "prober", true)
	r.progress(30)

	// Replica 0 is left to serve alone, so that a full disk there is a
	// refusal of writes, not a handover.
	for id := range 3 {
		if id != x {
			require.NoError(t, c.Stop(id))
		}
	}
	waitUntil(t, "replica 0 serves alone", func() bool { return waitPrimary(t, c) == x })
	r.progress(20)

	// Fill the filesystem under the load until the guard trips.
	big, err := os.Create(filepath.Join(mnt, "big"))
	require.NoError(t, err)
	chunk := make([]byte, 4<<20)
	for {
		st, ok := ownStatus(t, c, x)
		if ok && st.DiskFull != "" {
			break
		}
		if statfsFree(t, mnt) < 40<<20 {
			// Below the reserve by a margin: the guard trips on its next
			// tick; do not fill further (the test wants the guard, not
			// ENOSPC).
			time.Sleep(pollInterval)
			continue
		}
		_, err := big.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, big.Sync())
	st, _ := ownStatus(t, c, x)
	assert.Contains(t, st.DiskFull, "disk nearly full on replica 0: ")
	assert.Contains(t, st.DiskFull, "MiB free, reserve 64 MiB")
	refused := sendRefused(t, probe, "while the disk is full")
	assert.Contains(t, refused.Message, "disk nearly full on replica 0: ")
	assert.NotEmpty(t, allHistory(t, r.sink), "reads are served")
	assert.True(t, c.Running(x), "replica 0 runs on its full disk")

	// Room again: writes resume by themselves; the others come back.
	require.NoError(t, big.Close())
	require.NoError(t, os.Remove(big.Name()))
	r.progress(20)
	for id := range 3 {
		if id != x {
			require.NoError(t, c.Restart(t.Context(), id))
		}
	}
	waitHealthy(t, c)
	r.progress(20)
	assert.Empty(t, allHistory(t, probe), "a send refused for a full disk is never applied")
	r.finish()
	log := tailFile(c.LogPath(x), 64<<20)
	noCrashOutput(t, log)
	for _, bad := range []string{"SIGBUS", "fatal error", "no space left on device"} {
		assert.NotContains(t, log, bad)
	}
	assert.Equal(t, 1, strings.Count(log, diskFullLine), "one WARN when the disk filled")
	assert.Equal(t, 1, strings.Count(log, diskRoomLine), "one line when it had room again")
}

// newProbe returns a client logged in as user (registered first if
// register) that gives up on a request after 2s: it sees the error a
// request gets when no replica can take it.
func newProbe(t *testing.T, c *cluster.Cluster, user string, register bool) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Servers: c.Addrs(), FailoverTimeout: 2 * time.Second, RequestTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	if register {
		require.NoError(t, cl.Register(t.Context(), user, replicatedPassword))
	}
	_, err = cl.Login(t.Context(), user, replicatedPassword)
	require.NoError(t, err)
	return cl
}

// sendRefused sends a message from the probe to itself, which must be
// refused with unavailable, and returns the error.
func sendRefused(t *testing.T, probe *client.Client, body string) *client.Error {
	t.Helper()
	_, err := probe.Send(t.Context(), "prober", body)
	require.Error(t, err, "a send while no replica can write")
	var ce *client.Error
	require.True(t, errors.As(err, &ce), "a typed error: %v", err)
	assert.Equal(t, wire.CodeUnavailable, ce.Code, "%v", err)
	return ce
}

// setFree writes the failpoint file that a replica's guard reads its free
// space from, atomically (the guard reads it on every tick).
func setFree(t *testing.T, path string, bytes int64) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(strconv.FormatInt(bytes, 10)), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

func statfsFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(dir, &st))
	return int64(st.Bavail) * int64(st.Bsize)
}

// ownStatus asks replica id for its own status entry.
func ownStatus(t *testing.T, c *cluster.Cluster, id int) (wire.ReplicaStatus, bool) {
	t.Helper()
	cl, err := client.New(client.Config{Servers: []string{c.Addrs()[id]}, FailoverTimeout: time.Second, RequestTimeout: time.Second})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	all, err := cl.Status(ctx)
	if err != nil {
		return wire.ReplicaStatus{}, false
	}
	for _, s := range all {
		if int(s.ID) == id && s.Role != wire.RoleDown {
			return s, true
		}
	}
	return wire.ReplicaStatus{}, false
}

// inSync reports whether replica primary counts replica id in its in-sync
// set.
func inSync(t *testing.T, c *cluster.Cluster, primary, id int) bool {
	t.Helper()
	cl, err := client.New(client.Config{Servers: []string{c.Addrs()[primary]}, FailoverTimeout: time.Second, RequestTimeout: time.Second})
	require.NoError(t, err)
	defer cl.Close()
	all, err := cl.Status(t.Context())
	if err != nil {
		return true
	}
	for _, s := range all {
		if int(s.ID) == id {
			return s.InSync
		}
	}
	return false
}
