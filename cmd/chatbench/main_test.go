package main

// chatbench's flags map onto bench.Options, bad flags are usage errors, and a
// tiny run writes the table, the JSON and the plot where asked.

import (
	"bytes"
	"encoding/json"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		replicas int
		clients  int
		duration time.Duration // 0: bench's default for the mode
		quick    bool
		progress bool
	}{
		{"defaults", nil, 3, 16, 10 * time.Second, false, true},
		{"quick picks the short duration", []string{"--quick"}, 3, 16, 0, true, true},
		{"explicit duration wins over quick", []string{"--quick", "--duration", "5s"}, 3, 16, 5 * time.Second, true, true},
		{"everything", []string{"--replicas", "1", "--clients", "4", "--duration", "2s", "--quiet"}, 1, 4, 2 * time.Second, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, err := parseFlags(tt.args, io.Discard, &stderr)
			require.NoError(t, err)
			assert.Equal(t, tt.replicas, cfg.opts.Replicas)
			assert.Equal(t, tt.clients, cfg.opts.Clients)
			assert.Equal(t, tt.duration, cfg.opts.Duration)
			assert.Equal(t, tt.quick, cfg.opts.Quick)
			assert.Equal(t, tt.progress, cfg.opts.Progress != nil)
		})
	}
}

func TestParseFlags_Workload(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard, io.Discard)
	require.NoError(t, err)
	require.NotNil(t, cfg.opts.Listeners)
	assert.Equal(t, 0.5, *cfg.opts.Listeners, "half the users listen, as before")
	assert.Equal(t, 48, cfg.opts.Size)
	assert.Equal(t, 20, cfg.opts.ReadEvery)
	assert.Zero(t, cfg.opts.Idle, "bench's default idle time for the mode")
	assert.Empty(t, cfg.opts.ChatdArgs)
	assert.False(t, cfg.opts.Long)

	cfg, err = parseFlags([]string{
		"--listeners", "0", "--size", "200", "--read-every", "0", "--idle", "0",
		"--chatd-arg=--snapshot-every=10000", "--chatd-arg", "--retain-events=500",
	}, io.Discard, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 0.0, *cfg.opts.Listeners, "nobody listens: the peers' workload")
	assert.Equal(t, 200, cfg.opts.Size)
	assert.Negative(t, cfg.opts.ReadEvery, "0 reads never")
	assert.Negative(t, cfg.opts.Idle, "0 skips the idle measurement")
	assert.Equal(t, []string{"--snapshot-every=10000", "--retain-events=500"}, cfg.opts.ChatdArgs)

	cfg, err = parseFlags([]string{"--idle", "2s"}, io.Discard, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, cfg.opts.Idle)

	cfg, err = parseFlags([]string{"--long"}, io.Discard, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.opts.Long)
	assert.Zero(t, cfg.opts.Duration, "bench's long duration, 10 minutes")
	cfg, err = parseFlags([]string{"--long", "--duration", "20m"}, io.Discard, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 20*time.Minute, cfg.opts.Duration)
}

func TestRun_UsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
		{"bad duration", []string{"--duration", "soon"}, "invalid value"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"bad fraction", []string{"--listeners", "half"}, "invalid value"},
		{"empty body", []string{"--size", "0"}, "--size must be at least 1 byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			assert.ErrorIs(t, err, errUsage)
			assert.Contains(t, stderr.String(), tt.want)
			assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			assert.Empty(t, stdout.String())
		})
	}
}

func TestRun_HelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.ErrorIs(t, run(t.Context(), []string{"--help"}, &stdout, &stderr), flag.ErrHelp)
	assert.Contains(t, stdout.String(), "usage: chatbench")
	assert.Empty(t, stderr.String())

	stdout.Reset()
	assert.ErrorIs(t, run(t.Context(), []string{"--version"}, &stdout, &stderr), errVersion)
	assert.Regexp(t, `^chatbench \S+ \S+ rev \S+.* go1\.\d+\S* \S+/\S+\n$`, stdout.String())
}

func TestRun_InvalidOptions(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--replicas", "2"}, "replicas must be 1, 3 or 5"},
		{[]string{"--listeners", "2"}, "listeners must be a fraction from 0 to 1"},
		{[]string{"--size", "5000"}, "size must be 1 to 4096 bytes"},
		{[]string{"--quick", "--long"}, "quick and long exclude each other"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append(tt.args, "--quiet"), &stdout, &stderr)
		assert.ErrorContains(t, err, tt.want, "%v", tt.args)
	}
}

func TestRun_WritesOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs chatd")
	}
	bins, err := cluster.Build(t.Context(), t.TempDir())
	require.NoError(t, err)
	dir := t.TempDir()
	jsonPath, plotPath := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.png")
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{
		"--chatd", bins.Chatd, "--replicas", "1", "--clients", "2", "--duration", "1s",
		"--fsync-samples", "10", "--idle", "200ms", "--listeners", "0", "--size", "200",
		"--json", jsonPath, "--plot", plotPath,
	}, &stdout, &stderr)
	require.NoError(t, err, "stderr: %s", stderr.String())
	assert.Contains(t, stdout.String(), "latency p50 / p99 / p999")
	assert.Contains(t, stderr.String(), "chatbench: load (", "progress on stderr, a line per phase")
	assert.NotContains(t, stderr.String(), "\r", "stderr is no terminal: no carriage returns")

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, float64(1), m["replicas"])
	assert.Contains(t, m, "restart_ms")
	assert.Equal(t, float64(0), m["listening_users"])
	assert.Equal(t, float64(200), m["body_bytes"])
	assert.Contains(t, m, "cpu_us_per_send")
	assert.Contains(t, m, "idle_cpu_pct")
	assert.Contains(t, m, "disk_bytes")

	f, err := os.Open(plotPath)
	require.NoError(t, err)
	defer f.Close()
	_, err = png.Decode(f)
	assert.NoError(t, err)
}
