package main

// Tests of the start-up checks of a data directory: the cluster membership
// stored on the first start (a one-replica cluster on a three-replica
// cluster's data refuses at once, saying how to go on) and the secret file
// that must exist once the directory belongs to a cluster.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

func peersOf(n int) map[uint32]string {
	p := make(map[uint32]string)
	for i := range n {
		p[uint32(i)] = fmt.Sprintf("127.0.0.1:%d", 7100+i)
	}
	return p
}

func TestCheckMembership(t *testing.T) {
	l := eventlog.NewMemoryLog()
	three := config{dataDir: "data/0", peers: peersOf(3)}
	existed, err := checkMembership(l, three)
	require.NoError(t, err)
	assert.False(t, existed, "a new directory")
	existed, err = checkMembership(l, three)
	require.NoError(t, err)
	assert.True(t, existed)

	moved := config{dataDir: "data/0", peers: map[uint32]string{0: "10.0.0.1:7100", 1: "10.0.0.2:7100", 2: "10.0.0.3:7100"}}
	_, err = checkMembership(l, moved)
	require.NoError(t, err, "the same replicas at new addresses")

	one := config{dataDir: "data/0", peers: peersOf(1)}
	_, err = checkMembership(l, one)
	require.Error(t, err)
	assert.Equal(t, "data directory data/0 belongs to a cluster of replicas 0, 1, 2 (--peers 0=10.0.0.1:7100,1=10.0.0.2:7100,2=10.0.0.3:7100), "+
		"but this start has replica 0 alone (--peers 0=127.0.0.1:7100): start it with that cluster's --peers, "+
		"or on a new empty --data directory for a new cluster (move data/0 away to keep its data)", err.Error())

	_, err = checkMembership(l, config{dataDir: "d", peers: peersOf(5)})
	assert.ErrorContains(t, err, "this start has --peers 0=127.0.0.1:7100,1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103,4=127.0.0.1:7104")
}

func TestCheckMembership_DataFromBeforeItWasStored(t *testing.T) {
	l := eventlog.NewMemoryLog()
	isr, err := msgpack.Marshal(&replica.ISRChange{Members: []replica.ISRMember{{ID: 0}, {ID: 1}, {ID: 2}}})
	require.NoError(t, err)
	require.NoError(t, l.Append([]eventlog.Record{
		{Offset: 1, Epoch: 1, Type: replica.TypeEpochStart},
		{Offset: 2, Epoch: 1, Type: replica.TypeISR, Data: isr},
	}))
	idx, err := replica.EncodeISRIndex(replica.ISRIndex{At: 2, Epoch: 1})
	require.NoError(t, err)
	require.NoError(t, l.SetMeta(replica.ISRIndexKey, idx))

	_, err = checkMembership(l, config{dataDir: "data/0", peers: peersOf(1)})
	assert.ErrorContains(t, err, "data directory data/0 belongs to a cluster of replicas 0, 1, 2, but this start has replica 0 alone")
	existed, err := checkMembership(l, config{dataDir: "data/0", peers: peersOf(3)})
	require.NoError(t, err)
	assert.True(t, existed, "it holds records")
	_, ok, err := l.Meta(membershipMeta)
	require.NoError(t, err)
	assert.True(t, ok, "stored from now on")
}

// freeAddrs returns n loopback addresses that were free a moment ago.
func freeAddrs(t *testing.T, n int) []string {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		out = append(out, ln.Addr().String())
		require.NoError(t, ln.Close())
	}
	return out
}

// startReplica runs chatd in-process until it serves on addr, then stops it.
func startReplica(t *testing.T, addr string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, io.Discard) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("chatd %q exited: %v", args, err)
		case <-time.After(10 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "chatd serves")
	}
	cancel()
	require.NoError(t, <-done)
}

// refuse runs chatd in-process and returns its error, which must come at
// once.
func refuse(t *testing.T, args ...string) error {
	t.Helper()
	var stderr strings.Builder
	start := time.Now()
	err := run(t.Context(), args, io.Discard, &stderr)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second, "at once, not waiting")
	assert.NotContains(t, err.Error(), "\n", "one line")
	return err
}

func TestRun_RefusesDataOfAnotherCluster(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "0")
	addrs := freeAddrs(t, 3)
	peers := fmt.Sprintf("0=%s,1=%s,2=%s", addrs[0], addrs[1], addrs[2])
	startReplica(t, addrs[0], "--id", "0", "--data", data, "--peers", peers)

	// As REPLICAS=1 make run would start it.
	err := refuse(t, "--id", "0", "--data", data, "--listen", addrs[0])
	assert.ErrorContains(t, err, "data directory "+data+" belongs to a cluster of replicas 0, 1, 2 (--peers "+peers+"), but this start has replica 0 alone")
	assert.ErrorContains(t, err, "start it with that cluster's --peers, or on a new empty --data directory")

	startReplica(t, addrs[0], "--id", "0", "--data", data, "--peers", peers) // the same cluster still starts

	// A new directory next to it is a new one-replica cluster.
	startReplica(t, addrs[0], "--id", "0", "--data", filepath.Join(dir, "solo"), "--listen", addrs[0])
}

func TestRun_RefusesAMissingSecretFileOnExistingData(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "0")
	addrs := freeAddrs(t, 3)
	peers := fmt.Sprintf("0=%s,1=%s,2=%s", addrs[0], addrs[1], addrs[2])
	startReplica(t, addrs[0], "--id", "0", "--data", data, "--peers", peers)
	_, err := os.Stat(filepath.Join(dir, "cluster.secret"))
	require.NoError(t, err, "the first start created the default secret")

	missing := filepath.Join(dir, "other.secret")
	err = refuse(t, "--id", "0", "--data", data, "--peers", peers, "--secret-file", missing)
	assert.ErrorContains(t, err, "secret file "+missing+" does not exist, but data directory "+data+" already belongs to a cluster")
	_, statErr := os.Stat(missing)
	assert.True(t, errors.Is(statErr, os.ErrNotExist), "no new secret was created")

	// On a new directory a missing secret file is created, as before.
	startReplica(t, addrs[0], "--id", "0", "--data", filepath.Join(dir, "fresh"), "--peers", peers, "--secret-file", missing)
	_, err = os.Stat(missing)
	assert.NoError(t, err)
}

func TestRun_FlagErrorsAreOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"--id", "x", "--data", "d"},
		{"--data", "d", "--log-level", "loud"},
		{},
	} {
		var stdout, stderr strings.Builder
		err := run(t.Context(), args, &stdout, &stderr)
		require.ErrorIs(t, err, errUsage, "%q", args)
		assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "%q: %q", args, stderr.String())
		assert.True(t, strings.HasPrefix(stderr.String(), "chatd: "), stderr.String())
		assert.Contains(t, stderr.String(), "(see chatd --help)")
		assert.Empty(t, stdout.String())
	}

	var stdout, stderr strings.Builder
	require.ErrorIs(t, run(t.Context(), []string{"--help"}, &stdout, &stderr), flag.ErrHelp)
	assert.Contains(t, stdout.String(), "usage: chatd --id N --data DIR")
	assert.Contains(t, stdout.String(), "-peers")

	stdout.Reset()
	require.ErrorIs(t, run(t.Context(), []string{"--version"}, &stdout, &stderr), errVersion)
	assert.Regexp(t, `^chatd \S+ \S+ rev \S+.* go1\.\d+\S* \S+/\S+\n$`, stdout.String())
}
