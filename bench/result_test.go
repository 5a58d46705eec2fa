package bench

// The figures' presentation: targets judged right, absent figures shown as
// absent (null, "-") rather than 0, options validated, and the small
// helpers (series, peak memory, phase errors) behaving.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleResult() Result {
	return Result{
		Replicas: 3, Clients: 16, Sends: 50000, SendsPerSec: 10000, LoadSec: 5,
		LatencyMs:           LatencyMs{P50: 1, P99: 2, P999: 5},
		LagMs:               &LagMs{P50: 0.5, P99: 2.5, Max: 9},
		FsyncMs:             FsyncMs{P50: 0.5, P99: 1},
		FsyncPerSec:         2000,
		FailoverMs:          ptr(1500.0),
		CatchupEventsPerSec: ptr(250000.0),
		RestartMs:           300,
		RSSMB:               map[string]float64{"0": 50, "10": 70, "2": 60},
	}
}

func TestResult_Evaluate(t *testing.T) {
	r := sampleResult()
	r.evaluate()
	assert.InDelta(t, 5.0, r.Ratios.SendsPerFsync, 1e-9)
	assert.InDelta(t, 4.0, r.Ratios.LatencyP99OverFsyncP50, 1e-9)
	require.NotNil(t, r.Ratios.LagP99OverFsyncP50)
	assert.InDelta(t, 5.0, *r.Ratios.LagP99OverFsyncP50, 1e-9)

	want := map[string]bool{
		"sends_per_sec":          true, // 5x, the limit itself passes
		"latency_p99":            true, // 4x <= 12x
		"lag_p99_ms":             true, // 2.5 <= 3
		"failover_ms":            false,
		"catchup_events_per_sec": true,
		"restart_ms":             true,
	}
	require.Len(t, r.Targets, len(want))
	for _, tg := range r.Targets {
		require.NotNil(t, tg.Pass, tg.Name)
		assert.Equal(t, want[tg.Name], *tg.Pass, tg.Name)
	}
}

func TestResult_AbsentFigures(t *testing.T) {
	r := sampleResult()
	r.Replicas = 1
	r.LagMs, r.FailoverMs, r.CatchupEventsPerSec = nil, nil, nil
	r.evaluate()
	for _, tg := range r.Targets {
		switch tg.Name {
		case "lag_p99_ms", "failover_ms", "catchup_events_per_sec":
			assert.Nil(t, tg.Value, tg.Name)
			assert.Nil(t, tg.Pass, tg.Name)
		default:
			assert.NotNil(t, tg.Pass, tg.Name)
		}
	}
	assert.Nil(t, r.Ratios.LagP99OverFsyncP50)

	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, WriteJSON(path, r))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, key := range []string{"lag_ms", "failover_ms", "catchup_events_per_sec"} {
		v, ok := m[key]
		assert.True(t, ok, "%s is present", key)
		assert.Nil(t, v, "%s is null, not 0", key)
	}
	assert.Contains(t, string(b), `">= 5x single-fsync rate"`, "no HTML escaping")

	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, r))
	out := table.String()
	assert.Regexp(t, `lag durable p50 / p99 / max\s+-\s+-\s+<= 3 ms\s+-\n`, out)
	assert.Regexp(t, `failover\s+-\s+< 1 s\s+-\n`, out)
}

func TestWriteTable(t *testing.T) {
	r := sampleResult()
	r.evaluate()
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, r))
	out := buf.String()
	assert.Regexp(t, `sends\s+50000 acknowledged, 10000/s\s+5.0x fsync rate\s+>= 5x single-fsync rate\s+PASS`, out)
	assert.Regexp(t, `failover\s+1500 ms\s+< 1 s\s+MISS`, out)
	assert.Regexp(t, `lag durable p50 / p99 / max\s+0.500 / 2.50 / 9.00 ms`, out)
	assert.Contains(t, out, "0: 50 MiB, 2: 60 MiB, 10: 70 MiB", "replicas in id order")
}

func TestWriteJSON_Error(t *testing.T) {
	err := WriteJSON(filepath.Join(t.TempDir(), "missing", "r.json"), sampleResult())
	assert.ErrorContains(t, err, "write")
}

func TestWritePlot_Errors(t *testing.T) {
	err := WritePlot(filepath.Join(t.TempDir(), "missing", "p.png"), sampleResult())
	assert.ErrorContains(t, err, "create plot")
}

func TestOptions_WithDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 3, o.Replicas)
	assert.Equal(t, 16, o.Clients)
	assert.Equal(t, 10*time.Second, o.Duration)
	assert.NotNil(t, o.Logger)

	q, err := Options{Quick: true}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, q.Duration)
	assert.Less(t, q.CatchupEvents, o.CatchupEvents)

	d, err := Options{Quick: true, Duration: 7 * time.Second}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 7*time.Second, d.Duration, "an explicit duration wins over Quick")

	bad := []struct {
		name string
		opts Options
	}{
		{"two replicas", Options{Replicas: 2}},
		{"one client", Options{Clients: 1}},
		{"negative clients", Options{Clients: -3}},
		{"tiny duration", Options{Duration: time.Millisecond}},
		{"negative catch-up", Options{CatchupEvents: -1}},
		{"short phase timeout", Options{PhaseTimeout: time.Millisecond}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.opts.withDefaults()
			assert.ErrorIs(t, err, ErrInvalidOptions)
			_, err = Run(t.Context(), tt.opts)
			assert.ErrorIs(t, err, ErrInvalidOptions, "Run checks its options first")
		})
	}
}

func TestPhaseError(t *testing.T) {
	cause := errors.New("boom")
	err := error(&PhaseError{Phase: "failover", Err: cause})
	assert.EqualError(t, err, "failover phase: boom")
	assert.ErrorIs(t, err, cause)
	var pe *PhaseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "failover", pe.Phase)
}

func TestRun_UnusableChatd(t *testing.T) {
	opts := tinyOptions(filepath.Join(t.TempDir(), "no-such-chatd"), t.TempDir(), 1)
	_, err := Run(t.Context(), opts)
	var pe *PhaseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "start", pe.Phase)
}

func TestSeries(t *testing.T) {
	origin := time.Unix(1000, 0)
	s := NewSeries(origin, 100*time.Millisecond)
	at := func(ms int) time.Time { return origin.Add(time.Duration(ms) * time.Millisecond) }
	s.Add(at(10), 1*time.Millisecond)
	s.Add(at(50), 3*time.Millisecond)
	s.Add(at(550), 5*time.Millisecond) // closes windows 0..2
	s.Add(at(20), 7*time.Millisecond)  // too late for window 0: counted in window 3
	s.Add(at(950), 9*time.Millisecond)

	pts := s.Points()
	require.Len(t, pts, 4)
	assert.Equal(t, 50*time.Millisecond, pts[0].At)
	assert.Equal(t, uint64(2), pts[0].Count)
	assert.Equal(t, 3*time.Millisecond, pts[0].Max)
	assert.Equal(t, 350*time.Millisecond, pts[1].At, "the late value went to the oldest open window")
	assert.Equal(t, 7*time.Millisecond, pts[1].Max)
	assert.Equal(t, 550*time.Millisecond, pts[2].At)
	assert.Equal(t, 950*time.Millisecond, pts[3].At)
	for i := 1; i < len(pts); i++ {
		assert.Less(t, pts[i-1].At, pts[i].At, "time order")
	}
}

func TestPeakRSSMiB(t *testing.T) {
	mb, err := peakRSSMiB(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, mb, 1.0, "a Go test binary uses more than 1 MiB")

	_, err = peakRSSMiB(-1)
	assert.ErrorContains(t, err, "read peak memory")
}
