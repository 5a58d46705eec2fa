package main

// Goal: the --metrics-addr endpoint tells the truth. /metrics is valid
// Prometheus text with every metric the README documents (and the README
// documents every metric), fed by the core's hooks and by the replica's
// status at scrape time; /readyz answers 200 only for the serving primary
// or an in-sync backup, and otherwise 503 with the reason; the flag's
// errors are one line. metrics_e2e_test.go checks /readyz on real chatd
// processes.

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/server"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/shell"
)

// allMetricNames are the metrics chatd defines itself.
var allMetricNames = []string{
	metricBuildInfo, metricReplicas, metricRole, metricReady, metricEpoch, metricLogEnd, metricCommit,
	metricISRSize, metricDiskFull, metricBackupInSync, metricBackupBehind, metricLag, metricFsync, metricRequests,
	metricRequestDuration, metricConnections, metricListening, metricResubmissions, metricResubUnverified,
	metricRollbacks, metricSnapshotOffset, metricSnapshotBytes, metricLogFirst, metricSnapshotRecv, metricSnapshotSends,
	metricSnapshots,
}

func TestReadiness(t *testing.T) {
	isr := []replica.NodeID{0, 1, 2}
	for _, tc := range []struct {
		name      string
		st        shell.Status
		wantReady bool
		want      string
	}{
		{"primary", shell.Status{ID: 0, Role: shell.RolePrimary, Primary: 0, ISR: isr}, true, "primary"},
		{"in-sync backup", shell.Status{ID: 1, Role: shell.RoleBackup, Primary: 0, ISR: isr}, true, "in-sync backup of primary 0"},
		{"stopped primary", shell.Status{ID: 0, Role: shell.RolePrimary, Primary: 0, ISR: isr, Waiting: "stopped: read offset 7: corrupt"},
			false, "stopped: read offset 7: corrupt"},
		{"restarted, others down", shell.Status{ID: 1, Role: shell.RoleBackup, Primary: replica.None, ISR: isr, Recovering: true,
			Waiting: "restarted; waiting to hear from replicas 0, 2 of its last ISR [0 1 2]"},
			false, "restarted; waiting to hear from replicas 0, 2 of its last ISR [0 1 2]"},
		{"primary with a full disk", shell.Status{ID: 0, Role: shell.RolePrimary, Primary: 0, ISR: isr,
			DiskFull: "disk nearly full on replica 0: 12 MiB free, reserve 256 MiB; not taking writes"},
			false, "disk nearly full on replica 0: 12 MiB free, reserve 256 MiB; not taking writes"},
		{"failed", shell.Status{ID: 1, Role: shell.RoleFailed, ISR: isr, Waiting: "failed: read offset 9: checksum mismatch; restart it with --repair to fetch its log again from the cluster"},
			false, "failed: read offset 9: checksum mismatch; restart it with --repair to fetch its log again from the cluster"},
		{"starting", shell.Status{ID: 1, Role: shell.RoleBackup, Waiting: "starting"}, false, "starting"},
		{"backup out of the ISR", shell.Status{ID: 2, Role: shell.RoleBackup, Primary: 0, ISR: []replica.NodeID{0, 1}},
			false, "not in the ISR [0 1]; catching up with primary 0"},
		{"recovering backup", shell.Status{ID: 2, Role: shell.RoleBackup, Primary: 0, ISR: isr, Recovering: true},
			false, "restarted; catching up with primary 0"},
		{"backup without a primary", shell.Status{ID: 2, Role: shell.RoleBackup, Primary: replica.None, ISR: isr},
			false, "backup with no primary known"},
		{"candidate", shell.Status{ID: 2, Role: shell.RoleCandidate, Epoch: 4, Primary: replica.None, ISR: isr},
			false, "candidate in epoch 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, reason := readiness(tc.st)
			assert.Equal(t, tc.wantReady, ready)
			assert.Equal(t, tc.want, reason)
		})
	}
}

// fakeSources is a replica's state for the scrape-time metrics.
type fakeSources struct {
	mu sync.Mutex
	st shell.Status
}

func (f *fakeSources) status() shell.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSources) set(st shell.Status) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
}

func (f *fakeSources) sources() metricSources {
	return metricSources{
		replicas: 3,
		status:   f.status,
		sessions: func() server.Sessions { return server.Sessions{Clients: 3, Listening: 2} },
		resubmissions: func() server.ResubmissionCounts {
			return server.ResubmissionCounts{Applied: 4, Duplicate: 5, Rejected: 6, Unknown: 1}
		},
		rollbacks: func() server.RollbackCounts { return server.RollbackCounts{Undone: 2, Reset: 1} },
	}
}

// primaryStatus is replica 0 leading, 1 in sync and 2 out of the ISR, 500
// events behind.
func primaryStatus() shell.Status {
	return shell.Status{ID: 0, Role: shell.RolePrimary, Epoch: 7, Primary: 0, LogEnd: 1500, Commit: 1490,
		ISR: []replica.NodeID{0, 1},
		Replicas: []shell.ReplicaStatus{
			{ID: 0, Role: shell.RolePrimary, LogEnd: 1500, InSync: true},
			{ID: 1, Role: shell.RoleBackup, LogEnd: 1490, InSync: true},
			{ID: 2, Role: shell.RoleDown, LogEnd: 1000},
		}}
}

// scrape fetches url and parses it as the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "/metrics is Prometheus text")
	return fams
}

// sample returns the metric of family name whose labels include labels
// (name=value pairs), failing the test if there is none.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "metric %s is exported", name)
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return m
	}
	t.Fatalf("metric %s has no sample with labels %v", name, labels)
	return nil
}

func hasSample(fams map[string]*dto.MetricFamily, name, label, value string) bool {
	for _, m := range fams[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				return true
			}
		}
	}
	return false
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestMetrics_Endpoint(t *testing.T) {
	m := newMetrics(0, peersOf(3))
	src := &fakeSources{st: primaryStatus()}
	ts := httptest.NewServer(m.handler(src.sources(), slog.New(slog.DiscardHandler)))
	t.Cleanup(ts.Close)

	// What the hooks see between two scrapes.
	m.syncObserver()(3 * time.Millisecond)
	m.syncObserver()(5 * time.Millisecond)
	lag := m.lagObserver()
	lag(shell.LagSample{Replica: 1, AppendedAt: 1_000_000, DurableAt: 3_000_000})
	lag(shell.LagSample{Replica: 1, AppendedAt: 5_000_000, DurableAt: 6_000_000})
	lag(shell.LagSample{Replica: 2, AppendedAt: 1_000_000, DurableAt: 1_500_000})
	lag(shell.LagSample{Replica: 9, AppendedAt: 1, DurableAt: 2}) // not a peer: ignored
	req := m.requestObserver()
	req(wire.OpSend, server.CodeOK, 2*time.Millisecond)
	req(wire.OpSend, server.CodeOK, 4*time.Millisecond)
	req(wire.OpSend, wire.CodeNotPrimary, time.Millisecond)
	req(wire.OpLogin, wire.CodeWrongPassword, time.Millisecond)

	fams := scrape(t, ts.URL+"/metrics")
	for _, name := range allMetricNames {
		assert.Contains(t, fams, name)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_open_fds"} {
		assert.Contains(t, fams, name, "the Go and process collectors")
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		m := sample(t, fams, name, labels...)
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		}
		t.Fatalf("%s is neither a gauge nor a counter", name)
		return 0
	}
	bi := sample(t, fams, metricBuildInfo)
	assert.Equal(t, 1.0, bi.GetGauge().GetValue())
	var biLabels []string
	for _, lp := range bi.GetLabel() {
		biLabels = append(biLabels, lp.GetName())
		assert.NotEmpty(t, lp.GetValue(), lp.GetName())
	}
	assert.Subset(t, biLabels, []string{"version", "revision", "goversion"})

	assert.Equal(t, 3.0, value(metricReplicas))
	assert.Equal(t, 1.0, value(metricRole, "role", "primary"))
	assert.Equal(t, 0.0, value(metricRole, "role", "backup"))
	assert.Equal(t, 0.0, value(metricRole, "role", "candidate"))
	assert.Equal(t, 0.0, value(metricRole, "role", "failed"))
	assert.Equal(t, 0.0, value(metricDiskFull))
	assert.Equal(t, 1.0, value(metricReady))
	assert.Equal(t, 7.0, value(metricEpoch))
	assert.Equal(t, 1500.0, value(metricLogEnd))
	assert.Equal(t, 1490.0, value(metricCommit))
	assert.Equal(t, 2.0, value(metricISRSize))
	assert.Equal(t, 1.0, value(metricBackupInSync, "replica", "1"))
	assert.Equal(t, 0.0, value(metricBackupInSync, "replica", "2"))
	assert.Equal(t, 10.0, value(metricBackupBehind, "replica", "1"))
	assert.Equal(t, 500.0, value(metricBackupBehind, "replica", "2"))
	assert.False(t, hasSample(fams, metricBackupInSync, "replica", "0"), "the primary is not its own backup")
	assert.Equal(t, 3.0, value(metricConnections))
	assert.Equal(t, 2.0, value(metricListening))
	assert.Equal(t, 4.0, value(metricResubmissions, "outcome", "applied"))
	assert.Equal(t, 5.0, value(metricResubmissions, "outcome", "duplicate"))
	assert.Equal(t, 6.0, value(metricResubmissions, "outcome", "rejected"))
	assert.Equal(t, 1.0, value(metricResubUnverified))
	assert.Equal(t, 2.0, value(metricRollbacks, "kind", "undo"))
	assert.Equal(t, 1.0, value(metricRollbacks, "kind", "reset"))
	assert.Equal(t, 2.0, value(metricRequests, "op", "send", "code", "ok"))
	assert.Equal(t, 1.0, value(metricRequests, "op", "send", "code", "not_primary"))
	assert.Equal(t, 1.0, value(metricRequests, "op", "login", "code", "wrong_password"))

	fsync := sample(t, fams, metricFsync).GetHistogram()
	assert.Equal(t, uint64(2), fsync.GetSampleCount())
	assert.InDelta(t, 0.008, fsync.GetSampleSum(), 1e-9, "seconds")
	lag1 := sample(t, fams, metricLag, "replica", "1").GetHistogram()
	assert.Equal(t, uint64(2), lag1.GetSampleCount())
	assert.InDelta(t, 0.003, lag1.GetSampleSum(), 1e-9, "seconds: 2ms and 1ms")
	assert.Equal(t, uint64(1), sample(t, fams, metricLag, "replica", "2").GetHistogram().GetSampleCount())
	assert.False(t, hasSample(fams, metricLag, "replica", "0"), "no lag to itself")
	assert.False(t, hasSample(fams, metricLag, "replica", "9"))
	sendDur := sample(t, fams, metricRequestDuration, "op", "send").GetHistogram()
	assert.Equal(t, uint64(3), sendDur.GetSampleCount())
	assert.InDelta(t, 0.007, sendDur.GetSampleSum(), 1e-9)

	gathered, err := m.reg.Gather()
	require.NoError(t, err)
	gathered = slices.DeleteFunc(gathered, func(f *dto.MetricFamily) bool { return !strings.HasPrefix(f.GetName(), "replichat_") })
	problems, err := promlint.NewWithMetricFamilies(gathered).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "the metrics follow Prometheus's naming conventions (promlint)")

	code, body := get(t, ts.URL+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = get(t, ts.URL+"/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "primary\n", body)

	// A backup: no per-backup view, and readiness follows its status.
	src.set(shell.Status{ID: 1, Role: shell.RoleBackup, Epoch: 8, Primary: replica.None, ISR: []replica.NodeID{0, 1, 2},
		Recovering: true, Waiting: "restarted; waiting to hear from replicas 0, 2 of its last ISR [0 1 2]"})
	code, body = get(t, ts.URL+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "restarted; waiting to hear from replicas 0, 2 of its last ISR [0 1 2]\n", body)
	fams = scrape(t, ts.URL+"/metrics")
	assert.Equal(t, 0.0, value(metricReady))
	assert.Equal(t, 0.0, value(metricRole, "role", "primary"))
	assert.Equal(t, 1.0, value(metricRole, "role", "backup"))
	assert.Equal(t, 8.0, value(metricEpoch))
	assert.NotContains(t, fams, metricBackupInSync, "only the primary reports on its backups")
	assert.NotContains(t, fams, metricBackupBehind)

	src.set(shell.Status{ID: 1, Role: shell.RoleBackup, Primary: 0, ISR: []replica.NodeID{0, 1, 2},
		DiskFull: "disk nearly full", Waiting: "disk nearly full"})
	fams = scrape(t, ts.URL+"/metrics")
	assert.Equal(t, 1.0, value(metricDiskFull))
	assert.Equal(t, 0.0, value(metricReady))

	code, _ = get(t, ts.URL+"/nothing")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestMetrics_OffMeansNoHooks(t *testing.T) {
	var m *metrics
	assert.Nil(t, m.syncObserver())
	assert.Nil(t, m.lagObserver())
	assert.Nil(t, m.requestObserver())
}

func TestMetrics_OwnRegistry(t *testing.T) {
	// Two replicas in one process (as in tests) do not collide: no global
	// registry.
	a, b := newMetrics(0, peersOf(3)), newMetrics(1, peersOf(3))
	a.requestObserver()(wire.OpPing, server.CodeOK, time.Millisecond)
	fa, err := a.reg.Gather()
	require.NoError(t, err)
	fb, err := b.reg.Gather()
	require.NoError(t, err)
	count := func(fams []*dto.MetricFamily) int {
		for _, f := range fams {
			if f.GetName() == metricRequests {
				return len(f.GetMetric())
			}
		}
		return 0
	}
	assert.Equal(t, 1, count(fa))
	assert.Equal(t, 0, count(fb))
}

// TestMetrics_READMEListsEveryMetric keeps the README's Metrics section and
// the code in step, both ways.
func TestMetrics_READMEListsEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	start := strings.Index(readme, "\n### Metrics\n")
	require.GreaterOrEqual(t, start, 0, "the README has a Metrics section")
	section := readme[start+1:]
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(section[1:]); end != nil {
		section = section[:end[0]+1]
	}
	documented := map[string]bool{}
	for _, name := range regexp.MustCompile("`(replichat_[a-z_]+)").FindAllStringSubmatch(section, -1) {
		documented[name[1]] = true
	}
	for _, name := range allMetricNames {
		assert.True(t, documented[name], "README documents %s", name)
	}
	for name := range documented {
		trimmed := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		assert.True(t, slices.Contains(allMetricNames, trimmed), "README names %s, which chatd does not export", name)
	}
	assert.Contains(t, readme, "--metrics-addr", "the flag table has the flag")
}

func TestRun_MetricsAddrErrors(t *testing.T) {
	var stdout, stderr strings.Builder
	err := run(t.Context(), []string{"--data", t.TempDir(), "--metrics-addr", "nonsense"}, &stdout, &stderr)
	require.ErrorIs(t, err, errUsage)
	assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), stderr.String())
	assert.Contains(t, stderr.String(), `chatd: --metrics-addr "nonsense": want host:port`)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { busy.Close() })
	addr := freeAddrs(t, 1)[0]
	err = refuse(t, "--data", t.TempDir(), "--listen", addr, "--metrics-addr", busy.Addr().String())
	assert.ErrorContains(t, err, fmt.Sprintf("listen for --metrics-addr: listen tcp %s: bind: address already in use", busy.Addr()))
}
