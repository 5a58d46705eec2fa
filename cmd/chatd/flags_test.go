package main

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/replica/shell"
)

func TestParseFlagsMemory(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantLimit   int64
		wantPercent int
		wantErr     string // in the usage output; "" means success
	}{
		{name: "defaults", wantLimit: 384, wantPercent: 0},
		{name: "explicit", args: []string{"--memory-limit", "1024", "--gc-percent", "400"}, wantLimit: 1024, wantPercent: 400},
		{name: "runtime defaults", args: []string{"--memory-limit", "0", "--gc-percent", "0"}, wantLimit: 0, wantPercent: 0},
		{name: "gc off under a limit", args: []string{"--gc-percent", "-1"}, wantLimit: 384, wantPercent: -1},
		{name: "negative limit", args: []string{"--memory-limit", "-1"}, wantErr: "--memory-limit -1 is out of range"},
		{name: "huge limit", args: []string{"--memory-limit", "9223372036854775807"}, wantErr: "is out of range"},
		{name: "bad percent", args: []string{"--gc-percent", "-2"}, wantErr: "--gc-percent -2"},
		{name: "gc off without limit", args: []string{"--gc-percent", "-1", "--memory-limit", "0"}, wantErr: "--gc-percent -1 needs a --memory-limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			args := append([]string{"--data", t.TempDir()}, tt.args...)
			cfg, err := parseFlags(args, io.Discard, &stderr)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, errUsage)
				assert.Contains(t, stderr.String(), tt.wantErr)
				return
			}
			require.NoError(t, err, stderr.String())
			assert.Equal(t, tt.wantLimit, cfg.memLimitMiB)
			assert.Equal(t, tt.wantPercent, cfg.gcPercent)
		})
	}
}

func TestParseFlagsRequiresData(t *testing.T) {
	_, err := parseFlags(nil, io.Discard, io.Discard)
	assert.ErrorIs(t, err, errUsage)
}

// --snapshot-cpu reaches the config as given, defaults to the shell's
// share, and a share that is no share of one core is a usage error.
func TestParseFlagsSnapshotCPU(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    float64
		wantErr string
	}{
		{want: shell.DefaultSnapshotShare},
		{args: []string{"--snapshot-cpu", "0.25"}, want: 0.25},
		{args: []string{"--snapshot-cpu", "1"}, want: 1},
		{args: []string{"--snapshot-cpu", "0"}, wantErr: "--snapshot-cpu 0: want a share"},
		{args: []string{"--snapshot-cpu", "1.5"}, wantErr: "--snapshot-cpu 1.5"},
		{args: []string{"--snapshot-cpu", "NaN"}, wantErr: "--snapshot-cpu NaN"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stderr strings.Builder
			cfg, err := parseFlags(append([]string{"--data", t.TempDir()}, tt.args...), io.Discard, &stderr)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, errUsage)
				assert.Contains(t, stderr.String(), tt.wantErr)
				return
			}
			require.NoError(t, err, stderr.String())
			assert.Equal(t, tt.want, cfg.snapshotCPU)
		})
	}
}
