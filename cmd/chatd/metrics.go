package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/replichat/replichat/chat/server"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/cmd/internal/buildinfo"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/shell"
)

// The --metrics-addr endpoint: Prometheus metrics at /metrics, liveness at
// /healthz and readiness at /readyz. The core packages know nothing of
// Prometheus. Two kinds of metric feed it:
//   - events, observed as they happen through the hooks the core packages
//     offer (eventlog.BadgerOptions.ObserveSync, shell.Config.ObserveLag,
//     server.Config.ObserveRequest): histograms and counters owned here;
//   - states, read when scraped from the replica's cheap snapshots (the
//     shell's Status, the server's Sessions, the state machine's counts):
//     see scrapeCollector. Nothing is cached, so a scrape is never stale.
//
// Every metric lives in the registry that newMetrics creates, never in the
// client library's global one.

// Metric names. The README's "Metrics" section documents each one; keep
// them in step (metrics_test.go checks that the README names them all).
const (
	metricBuildInfo       = "replichat_build_info"
	metricReplicas        = "replichat_replicas"
	metricRole            = "replichat_role"
	metricReady           = "replichat_ready"
	metricEpoch           = "replichat_epoch"
	metricLogEnd          = "replichat_log_end_offset"
	metricCommit          = "replichat_commit_offset"
	metricISRSize         = "replichat_isr_size"
	metricDiskFull        = "replichat_disk_full"
	metricBackupInSync    = "replichat_backup_in_sync"
	metricBackupBehind    = "replichat_backup_events_behind"
	metricLag             = "replichat_replication_lag_seconds"
	metricFsync           = "replichat_eventlog_fsync_duration_seconds"
	metricRequests        = "replichat_requests_total"
	metricRequestDuration = "replichat_request_duration_seconds"
	metricConnections     = "replichat_client_connections"
	metricListening       = "replichat_listening_sessions"
	metricResubmissions   = "replichat_resubmissions_total"
	metricResubUnverified = "replichat_resubmissions_unverified_total"
	metricRollbacks       = "replichat_state_rollbacks_total"
	metricSnapshotOffset  = "replichat_snapshot_offset"
	metricSnapshotBytes   = "replichat_snapshot_bytes"
	metricLogFirst        = "replichat_log_first_offset"
	metricSnapshotRecv    = "replichat_snapshot_receive_bytes"
	metricSnapshotSends   = "replichat_snapshot_streams"
	metricSnapshots       = "replichat_snapshots_total"
)

// metrics holds chatd's registry and the metrics fed by the core's hooks.
// A nil *metrics (no --metrics-addr) hands out nil hooks: nothing is
// observed, at no cost.
type metrics struct {
	reg   *prometheus.Registry
	fsync prometheus.Histogram
	// lag has one histogram per peer, made up front: the hook runs on the
	// replication loop, which should not build label hashes. Read-only
	// after newMetrics.
	lag        map[uint32]prometheus.Observer
	requests   *prometheus.CounterVec
	requestDur *prometheus.HistogramVec
}

// newMetrics returns the metrics of a replica whose cluster is peers (this
// replica included), registered with the Go runtime's and the process's
// collectors and the build information.
func newMetrics(self uint32, peers map[uint32]string) *metrics {
	reg := prometheus.NewRegistry()
	bi := buildinfo.Read()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricBuildInfo,
		Help: "Always 1; the labels name the build of this chatd.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision,
			"goversion": bi.GoVersion, "module": bi.Module},
	})
	build.Set(1)
	lag := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: metricLag,
		Help: "Replication lag measured on the primary, per backup: from the primary's durable append of an event to the backup's acknowledgement that it holds it durably.",
		// 100us to about 3.3s.
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"replica"})
	m := &metrics{
		reg: reg,
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricFsync,
			Help: "Duration of each synced (fsynced) transaction of an append to the event log.",
			// 50us to about 1.6s.
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		lag: make(map[uint32]prometheus.Observer, len(peers)),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricRequests,
			Help: `Client requests answered, by op and code ("ok" on success, else the error code).`,
		}, []string{"op", "code"}),
		requestDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricRequestDuration,
			Help: "Time to answer a client request (replication and apply included, writing the response not), by op.",
			// 100us to about 13s: a request may wait up to its 15s timeout.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.2, 16),
		}, []string{"op"}),
	}
	for id := range peers {
		if id != self {
			m.lag[id] = lag.WithLabelValues(strconv.FormatUint(uint64(id), 10))
		}
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.fsync, lag, m.requests, m.requestDur,
	)
	return m
}

// syncObserver is the hook for eventlog.BadgerOptions.ObserveSync.
func (m *metrics) syncObserver() func(time.Duration) {
	if m == nil {
		return nil
	}
	return func(d time.Duration) { m.fsync.Observe(d.Seconds()) }
}

// lagObserver is the hook for shell.Config.ObserveLag.
func (m *metrics) lagObserver() func(shell.LagSample) {
	if m == nil {
		return nil
	}
	return func(s shell.LagSample) {
		if o, ok := m.lag[s.Replica]; ok {
			o.Observe(float64(s.DurableAt-s.AppendedAt) / float64(time.Second))
		}
	}
}

// requestObserver is the hook for server.Config.ObserveRequest.
func (m *metrics) requestObserver() func(op string, code wire.Code, took time.Duration) {
	if m == nil {
		return nil
	}
	return func(op string, code wire.Code, took time.Duration) {
		m.requests.WithLabelValues(op, string(code)).Inc()
		m.requestDur.WithLabelValues(op).Observe(took.Seconds())
	}
}

// metricSources is what the metrics read when scraped. Each must be cheap
// and safe to call from any goroutine.
type metricSources struct {
	// replicas is the cluster's configured size.
	replicas      int
	status        func() shell.Status
	sessions      func() server.Sessions
	resubmissions func() server.ResubmissionCounts
	rollbacks     func() server.RollbackCounts
}

// scrapeCollector turns metricSources into metrics at each scrape.
type scrapeCollector struct {
	src metricSources

	replicas, role, ready, epoch, logEnd, commit, isrSize, diskFull *prometheus.Desc
	backupInSync, backupBehind                                      *prometheus.Desc
	connections, listening                                          *prometheus.Desc
	resubmissions, resubUnverified, rollbacks                       *prometheus.Desc
	snapshotOffset, snapshotBytes, logFirst, snapshotRecv           *prometheus.Desc
	snapshotSends, snapshots                                        *prometheus.Desc
}

func newScrapeCollector(src metricSources) *scrapeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &scrapeCollector{
		src:      src,
		replicas: d(metricReplicas, "Replicas in the cluster, as configured (--peers)."),
		role: d(metricRole, "1 for the role this replica has now (primary, backup, candidate: running for primary, or failed: its log cannot be read), 0 for the others.",
			"role"),
		ready:    d(metricReady, "1 when /readyz answers 200: this replica is the serving primary, or an in-sync backup following one."),
		epoch:    d(metricEpoch, "The replica's epoch (each new primary starts a higher one)."),
		logEnd:   d(metricLogEnd, "Offset of the last event in this replica's log (0: empty)."),
		commit:   d(metricCommit, "Highest offset this replica knows committed (durable on every member of the ISR)."),
		isrSize:  d(metricISRSize, "Members of the in-sync replica set (ISR) as this replica knows it."),
		diskFull: d(metricDiskFull, "1 when the disk holding the data is below its reserve: the replica takes no writes until space returns."),
		backupInSync: d(metricBackupInSync, "Reported by the primary only: 1 when the backup is in the ISR, 0 when it is out (down or behind).",
			"replica"),
		backupBehind: d(metricBackupBehind, "Reported by the primary only: events the backup is behind the primary's log (catch-up progress of a backup that restarted or fell behind).",
			"replica"),
		connections: d(metricConnections, "Open client connections (replica peer links not included)."),
		listening:   d(metricListening, "Client sessions listening for messages (chat listen, the interactive session)."),
		resubmissions: d(metricResubmissions, "Re-submitted events (ones a fork truncated, sent again by the next primary) applied here, by outcome: applied, duplicate (had landed already) or rejected.",
			"outcome"),
		resubUnverified: d(metricResubUnverified, "Re-submitted events applied where the dedup table could no longer tell whether they had been applied before (possible duplicates; each logged as a warning)."),
		rollbacks: d(metricRollbacks, "Rollbacks of the chat state after the log was truncated below it, by kind: undo (by the state's undo history) or reset (emptied and replayed from the log).",
			"kind"),
		snapshotOffset: d(metricSnapshotOffset, "Offset of this replica's snapshots, by kind: latest (the newest) or base (the newest beyond any fork's reach: what the log is compacted up to at most, and what backups are sent). 0: none.",
			"kind"),
		snapshotBytes: d(metricSnapshotBytes, "Size of the latest snapshot."),
		logFirst:      d(metricLogFirst, "First event the log retains (1: nothing compacted); events before it are in a snapshot only."),
		snapshotRecv: d(metricSnapshotRecv, "A snapshot being received from the primary (install progress): bytes received and its total, by kind (received, total); 0 when none.",
			"kind"),
		snapshotSends: d(metricSnapshotSends, "Snapshot streams to backups in progress."),
		snapshots: d(metricSnapshots, "Snapshots since the process started, by event: taken here, installed here (received from the primary), rejected (received damaged).",
			"event"),
	}
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.replicas, c.role, c.ready, c.epoch, c.logEnd, c.commit, c.isrSize, c.diskFull,
		c.backupInSync, c.backupBehind, c.connections, c.listening, c.resubmissions, c.resubUnverified, c.rollbacks,
		c.snapshotOffset, c.snapshotBytes, c.logFirst, c.snapshotRecv, c.snapshotSends, c.snapshots} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := c.src.status()
	gauge(c.replicas, float64(c.src.replicas))
	for _, role := range []string{shell.RolePrimary, shell.RoleBackup, shell.RoleCandidate, shell.RoleFailed} {
		gauge(c.role, boolValue(st.Role == role), role)
	}
	ready, _ := readiness(st)
	gauge(c.ready, boolValue(ready))
	gauge(c.epoch, float64(st.Epoch))
	gauge(c.logEnd, float64(st.LogEnd))
	gauge(c.commit, float64(st.Commit))
	gauge(c.isrSize, float64(len(st.ISR)))
	gauge(c.diskFull, boolValue(st.DiskFull != ""))
	if st.Role == shell.RolePrimary {
		// Only the primary knows how far its backups are; a backup's view
		// of its peers would be stale numbers presented as current.
		for _, rs := range st.Replicas {
			if rs.ID == st.ID {
				continue
			}
			id := rs.ID.String()
			gauge(c.backupInSync, boolValue(rs.InSync), id)
			gauge(c.backupBehind, float64(st.LogEnd-min(st.LogEnd, rs.LogEnd)), id)
		}
	}
	ss := c.src.sessions()
	gauge(c.connections, float64(ss.Clients))
	gauge(c.listening, float64(ss.Listening))
	rc := c.src.resubmissions()
	counter(c.resubmissions, rc.Applied, "applied")
	counter(c.resubmissions, rc.Duplicate, "duplicate")
	counter(c.resubmissions, rc.Rejected, "rejected")
	counter(c.resubUnverified, rc.Unknown)
	rb := c.src.rollbacks()
	counter(c.rollbacks, rb.Undone, "undo")
	counter(c.rollbacks, rb.Reset, "reset")
	sn := st.Snapshots
	gauge(c.snapshotOffset, float64(sn.Latest), "latest")
	gauge(c.snapshotOffset, float64(sn.Base), "base")
	gauge(c.snapshotBytes, float64(sn.LatestBytes))
	gauge(c.logFirst, float64(max(sn.LogFirst, 1)))
	gauge(c.snapshotRecv, float64(sn.ReceivedBytes), "received")
	gauge(c.snapshotRecv, float64(sn.ReceivingBytes), "total")
	gauge(c.snapshotSends, float64(sn.Sending))
	counter(c.snapshots, sn.Taken, "taken")
	counter(c.snapshots, sn.Installed, "installed")
	counter(c.snapshots, sn.Rejected, "rejected")
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// readiness says whether the replica is ready (the serving primary, or an
// in-sync backup following a primary) and, if not, why, in the words of
// its status where it has them.
func readiness(st shell.Status) (bool, string) {
	switch {
	case st.Waiting != "":
		// The core explains everything that keeps a replica from serving
		// or from being in sync ("restarted; waiting to hear from ...").
		return false, st.Waiting
	case st.Role == shell.RolePrimary && st.DiskFull != "":
		// It still serves reads, but refuses every write.
		return false, st.DiskFull
	case st.Role == shell.RolePrimary:
		return true, "primary"
	case st.Role != shell.RoleBackup:
		return false, fmt.Sprintf("%s in epoch %d", st.Role, st.Epoch)
	case st.Primary == replica.None:
		return false, "backup with no primary known"
	case st.Recovering:
		return false, fmt.Sprintf("restarted; catching up with primary %s", st.Primary)
	case !slices.Contains(st.ISR, st.ID):
		return false, fmt.Sprintf("not in the ISR %v; catching up with primary %s", st.ISR, st.Primary)
	}
	return true, fmt.Sprintf("in-sync backup of primary %s", st.Primary)
}

// handler serves /metrics, /healthz and /readyz.
func (m *metrics) handler(src metricSources, logger *slog.Logger) http.Handler {
	m.reg.MustRegister(newScrapeCollector(src))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{logger},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// The process answers: it serves.
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, reason := readiness(src.status())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, reason)
	})
	return mux
}

// promLogger adapts the logger to promhttp's error log.
type promLogger struct{ logger *slog.Logger }

func (l promLogger) Println(v ...any) { l.logger.Warn("metrics", "err", fmt.Sprint(v...)) }

// metricsServer listens on addr (--metrics-addr) and returns the function
// that serves h until ctx is done.
func metricsServer(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) (func() error, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for --metrics-addr: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	logger.Info("serving metrics", "addr", ln.Addr().String())
	return func() error {
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server: %w", err)
		}
		return nil
	}, nil
}
