package e2e

// Damaged data directories (DESIGN.md section 3: a file whose bytes changed,
// a lost file; CONTRACT.md: a corrupt data directory is one clear line and
// a non-zero exit). A three-replica cluster takes a few thousand
// acknowledged sends; then, one case after another, a stopped replica's
// files are damaged (seeded: which file, where, how much) and it is
// restarted. A damaged log is refused with one line (at start, or by the
// background scrub of its checksums soon after), and a restart with
// --repair makes the replica a new member that fetches everything; a
// damaged chat state is rebuilt from the log by itself. All along, a
// watcher polls every replica: never two primaries of one epoch, never a
// primary that lacks a committed record (an empty or shortened database
// served). At the end: every acknowledged send is in the history exactly
// once, the three logs are identical (chatreplay), and no process panicked.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// damageSeedEnv replays a damage run: the seed is logged by each run.
const damageSeedEnv = "REPLICHAT_DAMAGE_SEED"

// damageCase damages a stopped replica's data directory.
type damageCase struct {
	name string
	// log: the damage is to the log, which is refused (then repaired with
	// --repair); else to the state, which is rebuilt without help.
	log bool
	// keeps: the refusal keeps the log's tables, which Badger's open
	// deleted (a MANIFEST that no longer names them).
	keeps  bool
	damage func(t *testing.T, rng *rand.Rand, dataDir string) string
}

var damageCases = []damageCase{
	{"truncated log MANIFEST", true, true, func(t *testing.T, rng *rand.Rand, dir string) string {
		return truncateFile(t, rng, filepath.Join(dir, "log", "MANIFEST"))
	}},
	{"bytes flipped in a log table's blocks", true, false, func(t *testing.T, rng *rand.Rand, dir string) string {
		return flipBytes(t, rng, pickFile(t, rng, filepath.Join(dir, "log"), ".sst"), 0, 0.8)
	}},
	{"bytes flipped in a log table's index", true, false, func(t *testing.T, rng *rand.Rand, dir string) string {
		return flipBytes(t, rng, pickFile(t, rng, filepath.Join(dir, "log"), ".sst"), 0.98, 1)
	}},
	{"bytes flipped in a state table", false, false, func(t *testing.T, rng *rand.Rand, dir string) string {
		return flipBytes(t, rng, pickFile(t, rng, filepath.Join(dir, "state"), ".sst"), 0, 1)
	}},
	{"missing log table", true, false, func(t *testing.T, rng *rand.Rand, dir string) string {
		return removeFile(t, pickFile(t, rng, filepath.Join(dir, "log"), ".sst"))
	}},
	{"missing log MANIFEST", true, true, func(t *testing.T, rng *rand.Rand, dir string) string {
		return removeFile(t, filepath.Join(dir, "log", "MANIFEST"))
	}},
	{"missing state table", false, false, func(t *testing.T, rng *rand.Rand, dir string) string {
		return removeFile(t, pickFile(t, rng, filepath.Join(dir, "state"), ".sst"))
	}},
}

func TestDamage_StoppedReplica(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(damageSeedEnv); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, damageSeedEnv)
	}
	t.Logf("seed %d (%s=%d replays this run)", seed, damageSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	r := startLoaded(t, cluster.Config{Replicas: 3}, 4)
	watch := watchCluster(t, r.c)
	r.progress(400) // a few thousand records before the first damage
	for i, dc := range damageCases {
		victim := i % 3
		r.progress(40)
		require.NoError(t, r.c.Stop(victim), "clean stop of replica %d", victim)
		what := dc.damage(t, rng, r.c.DataDir(victim))
		t.Logf("case %q: replica %d: %s", dc.name, victim, what)
		outcome := restartDamaged(t, r.c, victim, dc)
		t.Logf("case %q: %s", dc.name, outcome)
		waitHealthy(t, r.c)
	}
	r.progress(20)
	watch.stop()
	r.finish()
	for id := range 3 {
		noCrashOutput(t, tailFile(r.c.LogPath(id), 64<<20))
	}
}

// restartDamaged restarts replica id on its damaged directory and checks
// what it does: a damaged log is refused with one line, at start or by the
// scrub of its checksums that follows (then it is the last line of what
// the process printed), and a second start refuses at once, from the
// witness file; then a restart with --repair repairs it. A damaged state is
// rebuilt. It returns what happened, for the test's log.
func restartDamaged(t *testing.T, c *cluster.Cluster, id int, dc damageCase) string {
	t.Helper()
	damagedLog := dc.log
	from := fileSize(t, c.LogPath(id))
	err := c.Restart(t.Context(), id)
	if !damagedLog {
		require.NoError(t, err, "a replica with a damaged state starts")
		assert.Contains(t, readFrom(t, c.LogPath(id), from), "the chat state is damaged: moved it aside; rebuilding it from the log",
			"replica %d rebuilds its state", id)
		return "started; the state is rebuilt from the log"
	}
	waitUntil(t, fmt.Sprintf("replica %d stops on its damaged log", id), func() bool {
		_, exited := c.Exited(id)
		return exited
	})
	line, lines := checkRefusal(t, c, id, from)
	how := "refused at start"
	if dc.keeps {
		_, kept, ok := strings.Cut(line, "its files are kept in ")
		require.True(t, ok, "the line says where the files are: %q", line)
		kept, _, _ = strings.Cut(kept, ";")
		tables, err := filepath.Glob(filepath.Join(kept, "log", "*.sst"))
		require.NoError(t, err)
		assert.NotEmpty(t, tables, "the log's tables are kept in %s", kept)
	}
	if lines > 1 {
		// It ran until the scrub of the log's checksums found the damage.
		assert.Contains(t, line, "its log fails its checksums")
		how = "stopped by the scrub"
		from = fileSize(t, c.LogPath(id))
		require.Error(t, c.Restart(t.Context(), id), "a restart of a replica whose log failed its checksum")
		again, n := checkRefusal(t, c, id, from)
		assert.Equal(t, 1, n, "a second start refuses at once, with one line")
		assert.Contains(t, again, "its log fails its checksums")
	}
	// The damage is recorded: a start without --repair refuses at once.
	from = fileSize(t, c.LogPath(id))
	require.Error(t, c.Restart(t.Context(), id), "a restart without --repair")
	again, n := checkRefusal(t, c, id, from)
	assert.Equal(t, 1, n, "a start on a directory found damaged refuses at once, with one line")
	assert.Equal(t, line, again, "the same reason")
	repairReplica(t, c, id)
	return how + ": " + line
}

// checkRefusal checks how replica id exited: status 1, no crash, and the
// last line of its output (from offset from of its log file) the one line
// of a damaged directory. It returns that line and the number of lines.
func checkRefusal(t *testing.T, c *cluster.Cluster, id int, from int64) (string, int) {
	t.Helper()
	err, exited := c.Exited(id)
	require.True(t, exited)
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "exit status: %v", err)
	assert.Equal(t, 1, ee.ExitCode())
	out := readFrom(t, c.LogPath(id), from)
	noCrashOutput(t, out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	assert.True(t, strings.HasPrefix(last, "chatd: data directory "+c.DataDir(id)+" is damaged: "), "the last line: %q", last)
	assert.Contains(t, last, "restart with --repair")
	return last, len(lines)
}

// repairReplica restarts replica id with --repair: it moves the damaged
// files aside and starts empty, as a new member.
func repairReplica(t *testing.T, c *cluster.Cluster, id int) {
	t.Helper()
	from := fileSize(t, c.LogPath(id))
	require.NoError(t, c.RestartWith(t.Context(), id, "--repair"))
	assert.Contains(t, readFrom(t, c.LogPath(id), from), "repairing the data directory")
	kept, err := filepath.Glob(filepath.Join(c.DataDir(id), "damaged-*"))
	require.NoError(t, err)
	assert.NotEmpty(t, kept, "the damaged files are kept")
}

// waitHealthy waits until all three replicas run and are in sync, each by
// its own account, with one primary: under load their log ends may differ
// by what is in flight.
func waitHealthy(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	var last []wire.ReplicaStatus
	waitUntil(t, "every replica is in sync", func() bool {
		st, _ := ownStatuses(t, c)
		last = st
		primaries := 0
		for _, s := range st {
			if s.Role == wire.RolePrimary {
				primaries++
			}
			if !s.InSync || s.Waiting != "" {
				return false
			}
		}
		return len(st) == 3 && primaries == 1
	})
	_ = last
}

// startLoaded starts a cluster (cfg's Chatd, Dir and Args filled in; Args
// appended to chatdArgs) and n senders to one recipient.
func startLoaded(t *testing.T, cfg cluster.Config, n int) *replicated {
	t.Helper()
	cfg.Chatd = bins.Chatd
	cfg.Args = append(slices.Clone(chatdArgs), cfg.Args...)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	c, err := cluster.Start(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for id := range cfg.Replicas {
				t.Logf("replica %d log:\n%s", id, tailFile(c.LogPath(id), 8<<10))
			}
		}
	})
	waitPrimary(t, c)
	r := &replicated{t: t, c: c, sink: newClient(t, c, "sink", replicatedPassword, true)}
	for i := range n {
		name := fmt.Sprintf("sender%d", i)
		r.senders = append(r.senders, &sender{name: name, to: "sink", cl: newClient(t, c, name, replicatedPassword, true)})
	}
	r.stop = runSenders(t, r.senders...)
	return r
}

// clusterWatch polls every running replica's own status in the background
// and records violations: two primaries of one epoch, a primary whose log
// ends before a commit some replica reported earlier (it would serve a
// database without acknowledged records), a primary of an older epoch still
// claiming the role long after a newer one took over.
type clusterWatch struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	errs   []string
	polls  int
	maxPri int // most primaries seen at once
}

func watchCluster(t *testing.T, c *cluster.Cluster) *clusterWatch {
	ctx, cancel := context.WithCancel(t.Context())
	w := &clusterWatch{t: t, cancel: cancel, done: make(chan struct{})}
	clients := make([]*client.Client, len(c.Addrs()))
	for id, addr := range c.Addrs() {
		cl, err := client.New(client.Config{Servers: []string{addr}, FailoverTimeout: time.Second, RequestTimeout: time.Second})
		require.NoError(t, err)
		clients[id] = cl
	}
	go func() {
		defer close(w.done)
		defer func() {
			for _, cl := range clients {
				cl.Close()
			}
		}()
		var maxCommit uint64
		var overlapSince time.Time
		for ctx.Err() == nil {
			var primaries []wire.ReplicaStatus
			var commit uint64
			for id, cl := range clients {
				if !c.Running(id) {
					continue
				}
				sctx, scancel := context.WithTimeout(ctx, time.Second)
				all, err := cl.Status(sctx)
				scancel()
				if err != nil {
					continue
				}
				for _, s := range all {
					if int(s.ID) != id || s.Role == wire.RoleDown {
						continue
					}
					commit = max(commit, s.Commit)
					if s.Role == wire.RolePrimary {
						primaries = append(primaries, s)
					}
				}
			}
			w.mu.Lock()
			w.polls++
			w.maxPri = max(w.maxPri, len(primaries))
			for i, p := range primaries {
				if p.LogEnd < maxCommit {
					w.errs = append(w.errs, fmt.Sprintf("primary %d serves a log ending at %d, before the commit %d seen earlier", p.ID, p.LogEnd, maxCommit))
				}
				for _, q := range primaries[:i] {
					if q.Epoch == p.Epoch {
						w.errs = append(w.errs, fmt.Sprintf("replicas %d and %d are both primary of epoch %d", q.ID, p.ID, p.Epoch))
					}
				}
			}
			switch {
			case len(primaries) < 2:
				overlapSince = time.Time{}
			case overlapSince.IsZero():
				overlapSince = time.Now()
			case time.Since(overlapSince) > 3*time.Second:
				w.errs = append(w.errs, fmt.Sprintf("%d replicas claim to be primary for %v: %+v", len(primaries), time.Since(overlapSince), primaries))
				overlapSince = time.Now()
			}
			w.mu.Unlock()
			maxCommit = max(maxCommit, commit)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(cancel)
	return w
}

// stop ends the watch and fails the test on what it saw.
func (w *clusterWatch) stop() {
	w.t.Helper()
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("watched the cluster %d times; at most %d primaries at once", w.polls, w.maxPri)
	assert.Empty(w.t, w.errs)
	assert.Positive(w.t, w.polls)
}

// pickFile returns one of the files of dir ending in suffix, chosen by rng.
func pickFile(t *testing.T, rng *rand.Rand, dir, suffix string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	require.NotEmpty(t, files, "no %s file in %s", suffix, dir)
	return files[rng.IntN(len(files))]
}

// flipBytes inverts 1 to 4 bytes of path at offsets chosen by rng between
// the fractions lo and hi of its size.
func flipBytes(t *testing.T, rng *rand.Rand, path string, lo, hi float64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotEmpty(t, b)
	start, end := int(lo*float64(len(b))), max(int(hi*float64(len(b))), int(lo*float64(len(b)))+1)
	var offs []int
	for range 1 + rng.IntN(4) {
		off := min(start+rng.IntN(end-start), len(b)-1)
		b[off] ^= 0xff
		offs = append(offs, off)
	}
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return fmt.Sprintf("flipped the bytes at %v of %s (%d bytes)", offs, filepath.Base(path), len(b))
}

// truncateFile cuts path to a length chosen by rng below its size.
func truncateFile(t *testing.T, rng *rand.Rand, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	n := rng.Int64N(fi.Size())
	require.NoError(t, os.Truncate(path, n))
	return fmt.Sprintf("truncated %s from %d to %d bytes", filepath.Base(path), fi.Size(), n)
}

func removeFile(t *testing.T, path string) string {
	t.Helper()
	require.NoError(t, os.Remove(path))
	return "removed " + filepath.Base(path)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// readFrom returns path's content from offset from.
func readFrom(t *testing.T, path string, from int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b[min(from, int64(len(b))):])
}

// TestDamage_GarbageStateRebuiltAlone: a one-replica cluster whose state's
// MANIFEST is garbage starts anyway, rebuilds the state from its log, says
// so in one WARN, and serves the same history (the state is derived: it is
// never refused, never served damaged).
func TestDamage_GarbageStateRebuiltAlone(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	cl := newClient(t, c, "ann", "pw", true)
	for i := range 20 {
		_, err := cl.Send(t.Context(), "ann", fmt.Sprintf("note %d", i))
		require.NoError(t, err)
	}
	want := allHistory(t, cl)
	require.NoError(t, cl.Close())
	require.NoError(t, c.Stop(0))
	require.NoError(t, os.WriteFile(filepath.Join(c.DataDir(0), "state", "MANIFEST"), []byte("garbage"), 0o644))
	from := fileSize(t, c.LogPath(0))
	require.NoError(t, c.Restart(t.Context(), 0))
	out := readFrom(t, c.LogPath(0), from)
	assert.Equal(t, 1, strings.Count(out, "the chat state is damaged: moved it aside; rebuilding it from the log"), out)
	assert.Equal(t, want, allHistory(t, newClient(t, c, "ann", "pw", false)))
	noCrashOutput(t, out)
}
