package main

// chatbench's flags map onto bench.Options, bad flags are usage errors, and a
// tiny run writes the table, the JSON and the plot where asked.

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
			cfg, err := parseFlags(tt.args, &stderr)
			require.NoError(t, err)
			assert.Equal(t, tt.replicas, cfg.opts.Replicas)
			assert.Equal(t, tt.clients, cfg.opts.Clients)
			assert.Equal(t, tt.duration, cfg.opts.Duration)
			assert.Equal(t, tt.quick, cfg.opts.Quick)
			assert.Equal(t, tt.progress, cfg.opts.Progress != nil)
		})
	}
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			assert.ErrorIs(t, err, errUsage)
			assert.Contains(t, stderr.String(), tt.want)
			assert.Empty(t, stdout.String())
		})
	}
}

func TestRun_InvalidOptions(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"--replicas", "2", "--quiet"}, &stdout, &stderr)
	assert.ErrorContains(t, err, "replicas must be 1, 3 or 5")
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
		"--fsync-samples", "10", "--json", jsonPath, "--plot", plotPath,
	}, &stdout, &stderr)
	require.NoError(t, err, "stderr: %s", stderr.String())
	assert.Contains(t, stdout.String(), "latency p50 / p99 / p999")
	assert.Contains(t, stderr.String(), "\rchatbench: load", "progress on stderr")

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, float64(1), m["replicas"])
	assert.Contains(t, m, "restart_ms")

	f, err := os.Open(plotPath)
	require.NoError(t, err)
	defer f.Close()
	_, err = png.Decode(f)
	assert.NoError(t, err)
}
