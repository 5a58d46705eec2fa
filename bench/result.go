package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// LatencyMs is the client-side send latency, send -> acknowledged, in
// milliseconds.
type LatencyMs struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

// LagMs is the replication lag, primary append -> backup durable (or
// applied), in milliseconds.
type LagMs struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// FsyncMs is the disk's write+fsync latency in milliseconds.
type FsyncMs struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Result is what a run measured. The first block of fields has exactly the
// JSON keys of CONTRACT.md; the rest are extras. A figure the run could not
// measure (no replication with one replica) is nil, null in JSON: never 0.
type Result struct {
	Replicas    int       `json:"replicas"`
	Clients     int       `json:"clients"`
	Sends       uint64    `json:"sends"` // acknowledged during the load phase
	SendsPerSec float64   `json:"sends_per_sec"`
	LatencyMs   LatencyMs `json:"latency_ms"`
	// LagMs is nil when the primary recorded no lag sample (one replica).
	LagMs   *LagMs  `json:"lag_ms"`
	FsyncMs FsyncMs `json:"fsync_ms"`
	// FailoverMs is SIGKILL of the primary -> first acknowledged send that
	// the new primary accepted; nil with fewer than 3 replicas.
	FailoverMs *float64 `json:"failover_ms"`
	// CatchupEventsPerSec is the events a restarted backup missed, divided
	// by the time from its first hello answer to being in sync at the
	// primary's log end; nil with fewer than 3 replicas.
	CatchupEventsPerSec *float64 `json:"catchup_events_per_sec"`
	// RestartMs is the start-up of a replica holding the whole run's log,
	// stopped cleanly: process start -> answering a hello and counted in
	// sync by the primary at its log end. A lone replica is timed to
	// answering as primary plus one acknowledged send (the login before
	// that send, a password hash, is left out).
	RestartMs float64 `json:"restart_ms"`

	LoadSec      float64 `json:"load_sec"`    // length of the load phase
	SendsTotal   uint64  `json:"sends_total"` // acknowledged over all phases
	Pushes       uint64  `json:"pushes"`      // messages pushed to listeners
	Deletes      uint64  `json:"deletes"`     // message copies deleted (keep)
	LagAppliedMs *LagMs  `json:"lag_applied_ms"`
	// LagSamples is the number of samples lag_ms is computed from (load
	// phase); LagSamplesTotal counts every sample fetched in the run.
	LagSamples      uint64 `json:"lag_samples"`
	LagSamplesTotal uint64 `json:"lag_samples_total"`
	// LagSamplesDropped counts samples the primary discarded before the
	// harness fetched them (its buffer is bounded).
	LagSamplesDropped uint64   `json:"lag_samples_dropped"`
	FsyncPerSec       float64  `json:"fsync_per_sec"` // 1 / fsync p50
	FsyncSamples      int      `json:"fsync_samples"`
	CatchupEvents     *uint64  `json:"catchup_events"`
	CatchupMs         *float64 `json:"catchup_ms"`
	RestartHelloMs    float64  `json:"restart_hello_ms"` // process start -> first hello answer
	// RSSMB is each replica's peak resident memory (VmHWM) in MiB, by id:
	// the largest of the readings taken before each stop.
	RSSMB map[string]float64 `json:"rss_mb"`
	// Ratios are kept for compatibility: the goals stated as ratios to the
	// fsync rate are withdrawn (issue 10), the figures stay information.
	Ratios  Ratios   `json:"ratios"`
	Targets []Target `json:"targets"`

	// The workload: the fraction of users listening (ListeningUsers of
	// Clients), the message body in bytes, how many sends a non-listening
	// user makes between reads (0: never), and the extra chatd flags.
	Listeners      float64  `json:"listeners"`
	ListeningUsers int      `json:"listening_users"`
	BodyBytes      int      `json:"body_bytes"`
	ReadEvery      int      `json:"read_every"`
	Keep           int      `json:"keep"` // Options.Keep; 0: nobody deletes
	ChatdArgs      []string `json:"chatd_args"`
	// LoadPrimary is the replica that was primary when the load phase
	// started; nil if none was found.
	LoadPrimary *int `json:"load_primary"`
	// CPUUsPerSend is the CPU the replicas used during the load phase per
	// acknowledged send, in microseconds; nil when /proc could not be read.
	CPUUsPerSend *CPUPerSend `json:"cpu_us_per_send"`
	// LoadCPUPct is each replica's CPU during the load phase as a
	// percentage of one core.
	LoadCPUPct map[string]float64 `json:"load_cpu_pct"`
	// IdleCPUPct is each replica's CPU over IdleSec seconds before the
	// load, every client connected (the listeners listening) and nobody
	// sending, as a percentage of one core; nil when not measured.
	IdleCPUPct map[string]float64 `json:"idle_cpu_pct"`
	IdleSec    float64            `json:"idle_sec"`
	// DiskBytes is each replica's data directory over the run, sampled
	// every second from the start of the load to the end of the run.
	DiskBytes map[string][]DiskSample `json:"disk_bytes"`
	// DiskGrowth is how each data directory grew during the load phase.
	DiskGrowth map[string]DiskGrowth `json:"disk_growth"`

	// Timeline is the run over time, for WritePlot.
	Timeline Timeline `json:"-"`
}

// Ratios express figures relative to this disk's fsync.
type Ratios struct {
	// SendsPerFsync is sends/s over the single-fsync rate (1/fsync p50).
	SendsPerFsync float64 `json:"sends_per_sec_over_fsync_rate"`
	// LatencyP99OverFsyncP50 is send latency p99 over fsync p50.
	LatencyP99OverFsyncP50 float64 `json:"latency_p99_over_fsync_p50"`
	// LagP99OverFsyncP50 is lag p99 over fsync p50; nil without lag.
	LagP99OverFsyncP50 *float64 `json:"lag_p99_over_fsync_p50"`
}

// CPUPerSend is CPU time per acknowledged send, in microseconds.
type CPUPerSend struct {
	// Total is the sum over the replicas; nil unless every replica was
	// measured over the whole phase.
	Total *float64 `json:"total"`
	// ByReplica is each replica's share, by id.
	ByReplica map[string]float64 `json:"by_replica"`
	// Harness is this process's: the clients, the lag poller and the
	// harness itself (information: the machine's other CPU cost).
	Harness *float64 `json:"harness"`
}

// Timeline is the run's figures over time, since the start of the load.
type Timeline struct {
	Latency []Point // send latency per window
	Lag     []Point // durable lag per window, by append time
	Marks   []Mark  // fault injections and recoveries
	// Disk is each replica's data directory size, by id.
	Disk map[string][]DiskSample
}

// Mark is a moment of the run worth seeing on the plot.
type Mark struct {
	At    time.Duration // since the start of the load
	Label string
}

// Target is one of the project's performance goals and how the run fared.
type Target struct {
	Name string `json:"name"`
	Goal string `json:"goal"`
	// Value is the figure compared with Limit, in the goal's unit; nil when
	// the run did not measure it.
	Value *float64 `json:"value"`
	Limit float64  `json:"limit"`
	// AtLeast is true when Value must be >= Limit, false when it must be
	// below (or at most) Limit.
	AtLeast bool `json:"at_least"`
	// Pass is nil when Value is.
	Pass *bool `json:"pass"`
}

// The project's goals (issue 10). The earlier goals stated as ratios to
// this disk's fsync rate (sends/s >= 5x, latency p99 <= 12x fsync p50, lag
// p99 <= 3 ms) are withdrawn: on a disk whose fsync is cheaper than a
// request's CPU they do not measure the design. The fsync figures and
// ratios are still reported, as information.
const (
	targetCPUUsPerSend  = 150     // CPU per acknowledged send, all replicas, <= 150 µs
	targetCPUReplicas   = 3       // ... the goal is stated for 3 replicas
	targetCPUClients    = 16      // ... and 16 clients
	targetIdleCPUPct    = 1       // an idle replica <= 1% of a core
	targetFailoverMs    = 1000    // failover < 1 s
	targetCatchupPerSec = 200_000 // catch-up >= 200k events/s
	targetRestartMs     = 1000    // restart < 1 s
)

// evaluate fills Ratios and Targets from the figures.
func (r *Result) evaluate() {
	if r.FsyncPerSec > 0 {
		r.Ratios.SendsPerFsync = r.SendsPerSec / r.FsyncPerSec
	}
	if r.FsyncMs.P50 > 0 {
		r.Ratios.LatencyP99OverFsyncP50 = r.LatencyMs.P99 / r.FsyncMs.P50
		if r.LagMs != nil {
			r.Ratios.LagP99OverFsyncP50 = ptr(r.LagMs.P99 / r.FsyncMs.P50)
		}
	}
	var cpu *float64
	if r.CPUUsPerSend != nil {
		cpu = r.CPUUsPerSend.Total
	}
	cpuTarget := target("cpu_us_per_send", "<= 150 µs (3 replicas, 16 clients)", cpu, targetCPUUsPerSend, false)
	if r.Replicas != targetCPUReplicas || r.Clients != targetCPUClients {
		// Measured, but not in the goal's configuration: no verdict.
		cpuTarget.Pass = nil
	}
	var idle *float64
	if len(r.IdleCPUPct) > 0 {
		idle = ptr(0.0)
		for _, v := range r.IdleCPUPct {
			*idle = max(*idle, v)
		}
	}
	r.Targets = []Target{
		cpuTarget,
		target("idle_cpu_pct", "<= 1% of a core per replica", idle, targetIdleCPUPct, false),
		target("failover_ms", "< 1 s", r.FailoverMs, targetFailoverMs, false),
		target("catchup_events_per_sec", ">= 200k events/s", r.CatchupEventsPerSec, targetCatchupPerSec, true),
		target("restart_ms", "< 1 s", ptr(r.RestartMs), targetRestartMs, false),
	}
}

func target(name, goal string, v *float64, limit float64, atLeast bool) Target {
	t := Target{Name: name, Goal: goal, Value: v, Limit: limit, AtLeast: atLeast}
	if v != nil {
		pass := *v <= limit
		if atLeast {
			pass = *v >= limit
		}
		t.Pass = &pass
	}
	return t
}

func ptr[T any](v T) *T { return &v }

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func lagMs(h *Histogram) *LagMs {
	if h.Count() == 0 {
		return nil
	}
	return &LagMs{P50: ms(h.Quantile(0.5)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max())}
}

// WriteJSON writes r to path as indented JSON.
func WriteJSON(path string, r Result) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // goals read ">= 200k", not "\u003e= 200k"
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
