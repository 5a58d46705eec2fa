package bench

// End-to-end: the whole harness against real chatd processes, in a tiny
// configuration, checking that the JSON has every key of CONTRACT.md with
// sane figures and that the plot is a valid PNG. The 3-replica variant runs
// as soon as chatd can elect a primary among 3 replicas.

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
)

// cheapArgon are chatd flags that keep registrations fast: password hashing
// is not measured.
func cheapArgon() []string { return []string{"--argon-memory", "64", "--argon-time", "1"} }

func buildChatd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs chatd processes")
	}
	bins, err := cluster.Build(t.Context(), t.TempDir())
	require.NoError(t, err)
	return bins.Chatd
}

func tinyOptions(chatd string, dir string, replicas int) Options {
	return Options{
		Chatd:         chatd,
		Dir:           dir,
		Replicas:      replicas,
		Clients:       2,
		Duration:      time.Second,
		CatchupEvents: 300,
		FsyncSamples:  20,
		Idle:          300 * time.Millisecond,
		ChatdArgs:     cheapArgon(),
		PhaseTimeout:  30 * time.Second,
	}
}

// decodeJSON writes res with WriteJSON and reads it back as generic JSON, as
// a script would.
func decodeJSON(t *testing.T, res Result) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "res.json")
	require.NoError(t, WriteJSON(path, res))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// contractKeys are the top-level keys CONTRACT.md promises.
func contractKeys() []string {
	return []string{"replicas", "clients", "sends", "sends_per_sec", "latency_ms", "lag_ms",
		"fsync_ms", "failover_ms", "catchup_events_per_sec", "restart_ms"}
}

// number returns m[key] as a number, failing the test if it is not one.
func number(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	v, ok := m[key].(float64)
	require.True(t, ok, "%s is %v (%T), not a number", key, m[key], m[key])
	return v
}

func checkCommon(t *testing.T, m map[string]any, replicas int) {
	for _, key := range contractKeys() {
		assert.Contains(t, m, key)
	}
	assert.Equal(t, float64(replicas), number(t, m, "replicas"))
	assert.Equal(t, float64(2), number(t, m, "clients"))
	assert.Positive(t, number(t, m, "sends"))
	assert.Positive(t, number(t, m, "sends_per_sec"))
	assert.Positive(t, number(t, m, "restart_ms"))

	lat, ok := m["latency_ms"].(map[string]any)
	require.True(t, ok, "latency_ms is an object")
	p50, p99, p999 := number(t, lat, "p50"), number(t, lat, "p99"), number(t, lat, "p999")
	assert.Positive(t, p50)
	assert.LessOrEqual(t, p50, p99)
	assert.LessOrEqual(t, p99, p999)

	fs, ok := m["fsync_ms"].(map[string]any)
	require.True(t, ok, "fsync_ms is an object")
	assert.Positive(t, number(t, fs, "p50"))
	assert.LessOrEqual(t, number(t, fs, "p50"), number(t, fs, "p99"))

	// CPU and disk, from /proc and the data directories, every replica.
	cpu, ok := m["cpu_us_per_send"].(map[string]any)
	require.True(t, ok, "cpu_us_per_send is an object, got %v", m["cpu_us_per_send"])
	assert.Positive(t, number(t, cpu, "total"))
	by, ok := cpu["by_replica"].(map[string]any)
	require.True(t, ok)
	assert.Len(t, by, replicas)
	idle, ok := m["idle_cpu_pct"].(map[string]any)
	require.True(t, ok, "idle_cpu_pct is an object, got %v", m["idle_cpu_pct"])
	assert.Len(t, idle, replicas)
	disk, ok := m["disk_bytes"].(map[string]any)
	require.True(t, ok, "disk_bytes is an object")
	assert.Len(t, disk, replicas)
	for id, series := range disk {
		samples, ok := series.([]any)
		require.True(t, ok, "disk_bytes of %s is an array", id)
		assert.GreaterOrEqual(t, len(samples), 2, "sampled at least at the start and the end of the load")
	}
}

func checkPlot(t *testing.T, res Result) {
	path := filepath.Join(t.TempDir(), "plot.png")
	require.NoError(t, WritePlot(path, res))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err, "the plot is a valid PNG")
	assert.Greater(t, img.Bounds().Dx(), 100)
	assert.Greater(t, img.Bounds().Dy(), 100)
}

func TestRun_OneReplica(t *testing.T) {
	chatd := buildChatd(t)
	var progress bytes.Buffer
	opts := tinyOptions(chatd, t.TempDir(), 1)
	opts.Progress = &progress
	opts.Keep = 5
	res, err := Run(t.Context(), opts)
	require.NoError(t, err)
	assert.Positive(t, res.Deletes, "users holding more than 5 copies deleted the oldest")
	assert.Equal(t, 5, res.Keep)

	m := decodeJSON(t, res)
	checkCommon(t, m, 1)
	// With one replica there is nothing to replicate: absent, not zero.
	for _, key := range []string{"lag_ms", "failover_ms", "catchup_events_per_sec"} {
		assert.Nil(t, m[key], "%s must be null with one replica", key)
	}
	assert.Positive(t, res.Pushes, "listeners received pushes")
	assert.Contains(t, res.RSSMB, "0")
	assert.Positive(t, res.RSSMB["0"])
	assert.NotEmpty(t, res.Timeline.Latency)
	assert.Contains(t, progress.String(), "\r", "the progress line is rewritten in place")

	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, res))
	assert.Contains(t, table.String(), "restart")
	assert.Contains(t, table.String(), "each user keeping 5 message copies")
	checkPlot(t, res)
}

func TestRun_ThreeReplicas(t *testing.T) {
	chatd := buildChatd(t)
	opts := tinyOptions(chatd, t.TempDir(), 3)
	opts.ProfileDir = t.TempDir()
	opts.Keep = 20 // deletes across the failover and catch-up too
	res, err := Run(t.Context(), opts)
	require.NoError(t, err)
	assert.Positive(t, res.Deletes)

	m := decodeJSON(t, res)
	checkCommon(t, m, 3)
	lag, ok := m["lag_ms"].(map[string]any)
	require.True(t, ok, "lag_ms is an object with 3 replicas, got %v", m["lag_ms"])
	assert.Positive(t, number(t, lag, "p50"))
	assert.LessOrEqual(t, number(t, lag, "p50"), number(t, lag, "p99"))
	assert.LessOrEqual(t, number(t, lag, "p99"), number(t, lag, "max"))
	assert.Positive(t, number(t, m, "failover_ms"))
	assert.Positive(t, number(t, m, "catchup_events_per_sec"))
	assert.Len(t, res.RSSMB, 3)
	assert.GreaterOrEqual(t, len(res.Timeline.Marks), 4, "failover and catch-up are marked")
	checkPlot(t, res)

	// Every replica was profiled under load; catch-up profiles exist for
	// the replicas running then. A profile is gzipped protobuf.
	names := []string{"load-0.pprof", "load-1.pprof", "load-2.pprof"}
	catchups, err := filepath.Glob(filepath.Join(opts.ProfileDir, "catchup-*.pprof"))
	require.NoError(t, err)
	assert.Len(t, catchups, 3, "the restarted backup and the other two")
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(opts.ProfileDir, name))
		require.NoError(t, err)
		require.Greater(t, len(b), 2, name)
		assert.Equal(t, []byte{0x1f, 0x8b}, b[:2], "%s is a gzipped profile", name)
	}
}
