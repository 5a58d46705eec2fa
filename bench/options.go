package bench

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/replichat/replichat/chat"
)

// Options configures a run. The zero value of a field means its default;
// with Quick the defaults are those of a run that finishes in under a minute.
type Options struct {
	// Chatd is the chatd binary; "" builds the module's commands into the
	// run's directory (cluster.Build), which needs the go tool and the
	// module's source in the current directory.
	Chatd string
	// Dir holds the cluster's data, the replicas' logs and the fsync probe;
	// "" makes a temporary directory that is removed afterwards.
	Dir string
	// Replicas is the cluster size: 1, 3 or 5. Default 3. Failover and
	// catch-up need 3 or more.
	Replicas int
	// Clients is the number of concurrent users, at least 2. Default 16.
	Clients int
	// Duration is the length of the load phase. Default 10s (Quick: 3s;
	// Long: 10 minutes).
	Duration time.Duration
	// Quick selects the defaults of a short run.
	Quick bool
	// Long selects the defaults of a sustained-load run (10 minutes of
	// load), long enough for the disk curve to show whether disk use is
	// flat after warm-up. Quick and Long exclude each other.
	Long bool
	// Listeners is the fraction of users that listen for pushes, in [0, 1];
	// nil means 0.5. The others read their queue every ReadEvery sends. 0
	// is the peers' workload (../shared/peers): nobody listens.
	Listeners *float64
	// Size is the message body in bytes, 1 to chat.MaxBodyBytes. Default
	// 48 (the peers use 200).
	Size int
	// ReadEvery is how many sends a non-listening user makes between reads
	// of its queue. Default 20; negative: never read, as the peers' workload
	// does (queues then fill up at chat.MaxUnread unread messages, so only
	// for short runs).
	ReadEvery int
	// Keep, when positive, bounds what every user keeps: once it holds
	// more than Keep copies of messages (those it sent, and those it
	// received, pushed or read), it deletes the oldest deleteBatch of them
	// in one request. A message is gone once both its copies are, so the
	// state holds a bounded set of messages however long the run: the
	// steady state of a service whose users delete what they no longer
	// need, in which the disk as a whole (not only the log) can be flat.
	// 0: nobody deletes (the state grows with every message).
	Keep int
	// Idle is how long the idle cost of the cluster is measured (every
	// client connected, nobody sending), before the load. Default 5s
	// (Quick: 3s); negative skips the measurement.
	Idle time.Duration
	// CatchupEvents is how many events (at least; counted as sends) are
	// written while a backup is down. Default 20000 (Quick: 3000).
	CatchupEvents int
	// FsyncSamples is the number of write+fsync probes. Default 500
	// (Quick: 100); the probe stops after 5s in any case.
	FsyncSamples int
	// ChatdArgs are extra flags for every chatd, one argument each (e.g.
	// "--snapshot-every=10000", or cheaper argon2 costs for tests).
	ChatdArgs []string
	// PhaseTimeout bounds each phase beyond its planned length: a phase that
	// does not finish within it fails with an error. Default 60s.
	PhaseTimeout time.Duration
	// ProfileDir, if set, receives CPU profiles of every replica for go tool
	// pprof: load-<id>.pprof over the load phase, catchup-<id>.pprof over
	// the 2s from the restarted backup's start.
	ProfileDir string
	// Progress receives a progress line, rewritten in place with \r, while
	// the run goes; nil prints none.
	Progress io.Writer
	// Logger receives the clients' failover events and the phases; nil
	// discards them.
	Logger *slog.Logger
}

// The workload's defaults.
const (
	defaultListeners = 0.5
	defaultSize      = 48
	defaultReadEvery = 20
)

// fsyncMaxTime bounds the fsync probe on a slow disk.
const fsyncMaxTime = 5 * time.Second

func (o Options) withDefaults() (Options, error) {
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.Clients == 0 {
		o.Clients = 16
	}
	if o.Duration == 0 {
		switch {
		case o.Quick:
			o.Duration = 3 * time.Second
		case o.Long:
			o.Duration = 10 * time.Minute
		default:
			o.Duration = 10 * time.Second
		}
	}
	if o.Listeners == nil {
		o.Listeners = ptr(defaultListeners)
	}
	if o.Size == 0 {
		o.Size = defaultSize
	}
	if o.ReadEvery == 0 {
		o.ReadEvery = defaultReadEvery
	}
	if o.Idle == 0 {
		o.Idle = 5 * time.Second
		if o.Quick {
			o.Idle = 3 * time.Second
		}
	}
	if o.CatchupEvents == 0 {
		o.CatchupEvents = 20000
		if o.Quick {
			o.CatchupEvents = 3000
		}
	}
	if o.FsyncSamples == 0 {
		o.FsyncSamples = 500
		if o.Quick {
			o.FsyncSamples = 100
		}
	}
	if o.PhaseTimeout == 0 {
		o.PhaseTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Keep < 0:
		return o, fmt.Errorf("%w: keep must be 0 (never delete) or more, not %d", ErrInvalidOptions, o.Keep)
	case o.Quick && o.Long:
		return o, fmt.Errorf("%w: quick and long exclude each other", ErrInvalidOptions)
	case math.IsNaN(*o.Listeners) || *o.Listeners < 0 || *o.Listeners > 1:
		return o, fmt.Errorf("%w: listeners must be a fraction from 0 to 1, not %v", ErrInvalidOptions, *o.Listeners)
	case o.Size < 1 || o.Size > chat.MaxBodyBytes:
		return o, fmt.Errorf("%w: size must be 1 to %d bytes, not %d", ErrInvalidOptions, chat.MaxBodyBytes, o.Size)
	case o.Replicas != 1 && o.Replicas != 3 && o.Replicas != 5:
		return o, fmt.Errorf("%w: replicas must be 1, 3 or 5, not %d", ErrInvalidOptions, o.Replicas)
	case o.Clients < 2:
		return o, fmt.Errorf("%w: clients must be at least 2 (users send to each other), not %d", ErrInvalidOptions, o.Clients)
	case o.Duration < 100*time.Millisecond:
		return o, fmt.Errorf("%w: duration must be at least 100ms, not %v", ErrInvalidOptions, o.Duration)
	case o.CatchupEvents < 1 || o.FsyncSamples < 1:
		return o, fmt.Errorf("%w: catch-up events and fsync samples must be positive", ErrInvalidOptions)
	case o.PhaseTimeout < time.Second:
		return o, fmt.Errorf("%w: phase timeout must be at least 1s, not %v", ErrInvalidOptions, o.PhaseTimeout)
	}
	return o, nil
}
