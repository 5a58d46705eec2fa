package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// pollInterval is how often readiness and sync are checked while a figure
// is being timed: short, so that it adds little to the figure.
const pollInterval = 2 * time.Millisecond

// runner is the state of one Run.
type runner struct {
	opts   Options
	logger *slog.Logger
	cl     *cluster.Cluster
	addrs  []string
	users  []*user
	rec    *recorder
	lag    *lagPoller
	disk   *diskSampler
	proc   procFS // where CPU times are read
	work   workload
	prog   *progress
	origin time.Time // start of the load phase, the timeline's zero
	marks  []Mark
	rss    map[int]float64
	res    Result
	// loadFrom and loadTo are the load phase, in seconds since origin.
	loadFrom, loadTo float64
}

// Run starts a cluster, runs every phase (see the package documentation) and
// returns the figures. A phase that fails ends the run with a *PhaseError.
// Every process is stopped before Run returns, also when ctx is cancelled.
func Run(ctx context.Context, opts Options) (Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Result{}, err
	}
	r := &runner{opts: opts, logger: opts.Logger, rss: map[int]float64{}, proc: realProc, work: newWorkload(opts)}
	if opts.Progress != nil {
		r.prog = newProgress(opts.Progress)
	}
	progCtx, stopProg := context.WithCancel(ctx)
	waitProg := r.prog.run(progCtx)
	defer waitProg()
	defer stopProg()

	if r.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "chatbench-*")
		if err != nil {
			return Result{}, fmt.Errorf("create run directory: %w", err)
		}
		defer os.RemoveAll(dir)
		r.opts.Dir = dir
	} else if err := os.MkdirAll(r.opts.Dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("create run directory: %w", err)
	}
	res, err := r.run(ctx)
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// phase runs fn under a timeout and names the phase in its error.
func (r *runner) phase(ctx context.Context, name string, timeout time.Duration, fn func(context.Context) error) error {
	r.prog.setPhase(name)
	r.logger.Info("phase", "phase", name)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return &PhaseError{Phase: name, Err: err}
	}
	return nil
}

func (r *runner) run(ctx context.Context) (Result, error) {
	o := r.opts
	r.res.Replicas, r.res.Clients = o.Replicas, o.Clients
	r.res.Listeners, r.res.BodyBytes, r.res.ReadEvery = *o.Listeners, o.Size, max(o.ReadEvery, 0)
	r.res.Keep = o.Keep
	r.res.ChatdArgs = append([]string{}, o.ChatdArgs...)
	for i := range o.Clients {
		if listens(i, *o.Listeners) {
			r.res.ListeningUsers++
		}
	}
	if o.Chatd == "" {
		err := r.phase(ctx, "build", 5*time.Minute, func(ctx context.Context) error {
			bins, err := cluster.Build(ctx, filepath.Join(o.Dir, "bin"))
			r.opts.Chatd = bins.Chatd
			return err
		})
		if err != nil {
			return Result{}, err
		}
	}
	if err := r.phase(ctx, "fsync", fsyncMaxTime+o.PhaseTimeout, r.fsync); err != nil {
		return Result{}, err
	}
	defer r.shutdown()
	if err := r.phase(ctx, "start", o.PhaseTimeout, r.start); err != nil {
		return Result{}, err
	}

	if err := r.phase(ctx, "users", o.PhaseTimeout, func(ctx context.Context) error {
		users, err := connectUsers(ctx, r.addrs, o.Clients, *o.Listeners, r.clientConfig(), r.logger)
		r.users = users
		return err
	}); err != nil {
		return Result{}, err
	}
	defer closeUsers(r.users)

	// The listeners live from here to the end of the run, the lag poller
	// and the disk sampler from the start of the load; cancelling bg stops
	// them. The timeline starts with the load.
	bg, stopBg := context.WithCancel(ctx)
	defer stopBg()
	window := max(o.Duration/50, 50*time.Millisecond)
	r.rec = newRecorder(time.Now(), window)
	if r.prog != nil {
		r.prog.rec.Store(r.rec)
	}
	waitListeners := listeners(bg, r.users, r.rec, r.work)
	defer waitListeners()
	defer stopBg()
	if o.Idle > 0 {
		if err := r.phase(ctx, "idle", o.Idle+o.PhaseTimeout, r.idle); err != nil {
			return Result{}, err
		}
	}

	r.origin = time.Now()
	r.rec.startTimeline(r.origin)
	r.lag = newLagPoller(r.addrs, r.origin, window)
	defer r.lag.close()
	dirs := make([]string, o.Replicas)
	for id := range dirs {
		dirs[id] = r.cl.DataDir(id)
	}
	r.disk = newDiskSampler(dirs, r.origin)
	var bgWG sync.WaitGroup
	bgWG.Go(func() { r.lag.run(bg) })
	bgWG.Go(func() { r.disk.run(bg) })
	defer bgWG.Wait()
	defer stopBg()

	phases := []struct {
		name    string
		fn      func(context.Context) error
		timeout time.Duration
		minRepl int
	}{
		{"load", r.load, o.Duration + o.PhaseTimeout, 1},
		{"failover", r.failover, 2*o.Duration + o.PhaseTimeout, 3},
		{"catch-up", r.catchup, o.PhaseTimeout, 3},
		{"restart", r.restart, o.PhaseTimeout, 1},
	}
	for _, p := range phases {
		if o.Replicas < p.minRepl {
			continue
		}
		if err := r.phase(ctx, p.name, p.timeout, p.fn); err != nil {
			return Result{}, err
		}
	}
	stopBg()
	bgWG.Wait() // the disk sampler's last sample is in
	return r.finish(), nil
}

func (r *runner) clientConfig() client.Config {
	return client.Config{
		DialTimeout:     2 * time.Second,
		RequestTimeout:  5 * time.Second,
		FailoverTimeout: r.opts.PhaseTimeout,
	}
}

func (r *runner) fsync(ctx context.Context) error {
	f, err := ProbeFsync(ctx, r.opts.Dir, r.opts.FsyncSamples, fsyncMaxTime)
	if err != nil {
		return err
	}
	r.res.FsyncMs = FsyncMs{P50: ms(f.P50), P99: ms(f.P99)}
	r.res.FsyncPerSec = f.PerSec()
	r.res.FsyncSamples = f.Samples
	return nil
}

func (r *runner) start(ctx context.Context) error {
	cl, err := cluster.Start(ctx, cluster.Config{
		Chatd:        r.opts.Chatd,
		Dir:          filepath.Join(r.opts.Dir, "cluster"),
		Replicas:     r.opts.Replicas,
		Args:         r.opts.ChatdArgs,
		ReadyTimeout: r.opts.PhaseTimeout,
		Debug:        r.opts.ProfileDir != "",
	})
	if err != nil {
		return err
	}
	r.cl = cl
	r.addrs = cl.Addrs()
	_, err = findPrimary(ctx, r.addrs, -1, r.opts.PhaseTimeout)
	return err
}

// shutdown kills every replica, if the cluster was started.
func (r *runner) shutdown() {
	if r.cl != nil {
		r.cl.Close()
	}
}

// readRSS notes replica id's peak memory, if it runs.
func (r *runner) readRSS(id int) {
	pid := r.cl.Pid(id)
	if pid == 0 {
		return
	}
	mb, err := peakRSSMiB(pid)
	if err != nil {
		r.logger.Warn("read peak memory", "node", id, "err", err)
		return
	}
	r.rss[id] = max(r.rss[id], mb)
}

func (r *runner) mark(label string) {
	r.marks = append(r.marks, Mark{At: time.Since(r.origin), Label: label})
}

// pids returns the process id of every replica, 0 for one not running.
func (r *runner) pids() map[int]int {
	m := make(map[int]int, len(r.addrs))
	for id := range r.addrs {
		m[id] = r.cl.Pid(id)
	}
	return m
}

// idle measures what the cluster costs doing nothing: every replica's CPU
// over Options.Idle, every client connected and the listeners listening,
// nobody sending (the lag poller, which makes requests, starts later).
func (r *runner) idle(ctx context.Context) error {
	// Let the start-up (registrations, logins, listens) settle first.
	if err := sleep(ctx, min(r.opts.Idle/4, 500*time.Millisecond)); err != nil {
		return err
	}
	from := takeCPU(r.proc, r.pids())
	if err := sleep(ctx, r.opts.Idle); err != nil {
		return err
	}
	to := takeCPU(r.proc, r.pids())
	r.res.IdleCPUPct = cpuPercent(from, to)
	r.res.IdleSec = to.at.Sub(from.at).Seconds()
	if r.res.IdleCPUPct == nil {
		r.logger.Warn("idle cpu: no replica could be measured (no /proc?)")
	}
	return nil
}

// load measures the steady state: throughput, latency, lag and CPU per
// send.
func (r *runner) load(ctx context.Context) error {
	if p, err := findPrimary(ctx, r.addrs, -1, r.opts.PhaseTimeout); err == nil {
		r.res.LoadPrimary = &p
	}
	r.disk.sample()
	start := time.Now()
	r.rec.setMeasuring(true)
	r.lag.measure(start, time.Time{})
	sends0 := r.rec.sends.Load()
	cpu0 := takeCPU(r.proc, r.pids())
	loadCtx, cancel := context.WithTimeout(ctx, r.opts.Duration)
	defer cancel()
	waitProfiles := r.profile(loadCtx, "load", 0)
	err := drive(loadCtx, r.users, r.rec, r.work, nil)
	end := time.Now()
	cpu1 := takeCPU(r.proc, r.pids())
	sends1 := r.rec.sends.Load()
	r.disk.sample()
	if perr := waitProfiles(); perr != nil {
		r.logger.Warn("cpu profiles", "err", perr)
	}
	r.rec.setMeasuring(false)
	r.lag.measure(start, end)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Fetch the lag samples of the phase now: the failover kills the
	// primary that holds them.
	r.lag.freeze(ctx)
	r.res.Sends = sends1 - sends0
	r.res.LoadSec = end.Sub(start).Seconds()
	r.res.SendsPerSec = float64(r.res.Sends) / r.res.LoadSec
	if r.res.Sends == 0 {
		return errors.New("no send was acknowledged")
	}
	r.res.CPUUsPerSend = cpuPerSend(cpu0, cpu1, r.opts.Replicas, r.res.Sends)
	r.res.LoadCPUPct = cpuPercent(cpu0, cpu1)
	r.loadFrom, r.loadTo = start.Sub(r.origin).Seconds(), end.Sub(r.origin).Seconds()
	return nil
}

// background runs drive until the returned stop function is called, which
// returns drive's error. ended is closed when drive returns, which before
// stop means it failed.
func (r *runner) background(ctx context.Context) (ended <-chan struct{}, stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = drive(ctx, r.users, r.rec, r.work, nil)
	}()
	return done, func() error {
		cancel()
		<-done
		return err
	}
}

// failover kills the primary under load and times the first acknowledgement
// by its successor, then restarts the old primary and waits until it is back
// in sync.
func (r *runner) failover(ctx context.Context) error {
	p, err := findPrimary(ctx, r.addrs, -1, r.opts.PhaseTimeout)
	if err != nil {
		return err
	}
	loadEnded, stopLoad := r.background(ctx)
	loadRunning := true
	defer func() {
		if loadRunning {
			stopLoad()
		}
	}()
	// Let the load settle before the kill.
	if err := sleep(ctx, min(r.opts.Duration/4, 500*time.Millisecond)); err != nil {
		return err
	}
	r.readRSS(p)
	killStart := time.Now()
	r.mark("kill primary " + strconv.Itoa(p))
	if err := r.cl.Kill(p); err != nil {
		return fmt.Errorf("kill primary %d: %w", p, err)
	}
	// Armed only once the process is reaped: a send stamped later than
	// this cannot come from it.
	acked := r.rec.armFailover(time.Now())
	select {
	case <-acked:
	case <-loadEnded:
		loadRunning = false
		err := stopLoad()
		if err == nil {
			err = ctx.Err() // drive ends without error only with ctx
		}
		return fmt.Errorf("load after killing primary %d: %w", p, err)
	case <-ctx.Done():
		return fmt.Errorf("no send acknowledged after killing primary %d: %w", p, ctx.Err())
	}
	ack := r.rec.failoverAck()
	r.res.FailoverMs = ptr(ms(ack.Sub(killStart)))
	r.marks = append(r.marks, Mark{At: ack.Sub(r.origin), Label: "first ack after failover"})
	if err := sleep(ctx, min(r.opts.Duration/4, time.Second)); err != nil {
		return err
	}
	loadRunning = false
	if err := stopLoad(); err != nil {
		return fmt.Errorf("load during failover: %w", err)
	}
	if err := r.cl.Restart(ctx, p); err != nil {
		return fmt.Errorf("restart old primary %d: %w", p, err)
	}
	if _, err := r.waitInSync(ctx, p); err != nil {
		return fmt.Errorf("old primary %d rejoining: %w", p, err)
	}
	r.mark("old primary back in sync")
	return nil
}

// catchup kills a backup, writes CatchupEvents events without it, restarts
// it and times its replay until it is in sync at the primary's log end.
func (r *runner) catchup(ctx context.Context) error {
	p, err := findPrimary(ctx, r.addrs, -1, r.opts.PhaseTimeout)
	if err != nil {
		return err
	}
	b := r.backupOf(p)
	st, err := statusOf(ctx, r.addrs[b])
	if err != nil {
		return fmt.Errorf("status of backup %d: %w", b, err)
	}
	self, ok := entry(st, b)
	if !ok {
		return fmt.Errorf("backup %d does not describe itself in its status", b)
	}
	before := self.LogEnd
	r.readRSS(b)
	r.mark("kill backup " + strconv.Itoa(b))
	if err := r.cl.Kill(b); err != nil {
		return fmt.Errorf("kill backup %d: %w", b, err)
	}
	sends0 := r.rec.sends.Load()
	target := sends0 + uint64(r.opts.CatchupEvents)
	if err := drive(ctx, r.users, r.rec, r.work, func() bool { return r.rec.sends.Load() >= target }); err != nil {
		return fmt.Errorf("write %d events without backup %d: %w", r.opts.CatchupEvents, b, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write %d events without backup %d: %d acknowledged in time: %w",
			r.opts.CatchupEvents, b, r.rec.sends.Load()-sends0, err)
	}
	tStart := time.Now()
	ready, restarted := r.restartAsync(ctx, b)
	defer restarted()
	if err := <-ready; err != nil {
		return err
	}
	tReady := time.Now()
	r.mark("restart backup " + strconv.Itoa(b))
	waitProfiles := r.profile(ctx, "catchup", 2)
	defer func() {
		if err := waitProfiles(); err != nil {
			r.logger.Warn("cpu profiles", "err", err)
		}
	}()
	end, err := r.waitInSync(ctx, b)
	if err != nil {
		return fmt.Errorf("backup %d catching up: %w", b, err)
	}
	tSync := time.Now()
	r.mark("backup " + strconv.Itoa(b) + " in sync")
	if err := restarted(); err != nil {
		return err
	}
	if end <= before {
		return fmt.Errorf("backup %d missed no event (log end %d before and after)", b, end)
	}
	events := end - before
	r.res.CatchupEvents = &events
	r.res.CatchupMs = ptr(ms(tSync.Sub(tReady)))
	r.res.CatchupEventsPerSec = ptr(float64(events) / tSync.Sub(tReady).Seconds())
	r.logger.Info("catch-up", "node", b, "events", events, "start_ms", ms(tReady.Sub(tStart)), "catchup_ms", *r.res.CatchupMs)
	return nil
}

// restart stops a replica holding the whole log cleanly, starts it again and
// times it until it serves: in sync with the primary, or, alone, until it
// acknowledges a send.
func (r *runner) restart(ctx context.Context) error {
	id := 0
	if r.opts.Replicas > 1 {
		p, err := findPrimary(ctx, r.addrs, -1, r.opts.PhaseTimeout)
		if err != nil {
			return err
		}
		id = r.backupOf(p)
	}
	r.readRSS(id)
	if err := r.cl.Stop(id); err != nil {
		return fmt.Errorf("stop replica %d: %w", id, err)
	}
	r.mark("restart replica " + strconv.Itoa(id))
	t0 := time.Now()
	ready, restarted := r.restartAsync(ctx, id)
	defer restarted()
	if err := <-ready; err != nil {
		return err
	}
	r.res.RestartHelloMs = ms(time.Since(t0))
	if r.opts.Replicas > 1 {
		if _, err := r.waitInSync(ctx, id); err != nil {
			return fmt.Errorf("replica %d rejoining: %w", id, err)
		}
		r.res.RestartMs = ms(time.Since(t0))
	} else {
		// Alone, the replica serves once it answers as primary (it may
		// answer as recovering before). The figure adds one send's round
		// trip, but not the login before it: hashing a password is not
		// part of a restart.
		if err := pollEvery(ctx, pollInterval, func() (bool, error) {
			p, err := dialProbe(ctx, r.addrs[id], "chatbench-hello")
			if err != nil {
				return false, nil
			}
			p.close()
			return p.hello.Role == wire.RolePrimary, nil
		}); err != nil {
			return fmt.Errorf("replica %d answering as primary: %w", id, err)
		}
		serving := time.Since(t0)
		send, err := r.sendOnce(ctx)
		if err != nil {
			return fmt.Errorf("first send after restart: %w", err)
		}
		r.res.RestartMs = ms(serving + send)
	}
	r.mark("replica " + strconv.Itoa(id) + " serving")
	return restarted()
}

// sendOnce logs in with a new client, as a user arriving after a restart
// would, and returns how long one send then takes.
func (r *runner) sendOnce(ctx context.Context) (time.Duration, error) {
	cfg := r.clientConfig()
	cfg.Servers = r.addrs
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	u := r.users[0]
	if _, err := c.Login(ctx, u.name, benchPassword); err != nil {
		return 0, fmt.Errorf("log in: %w", err)
	}
	start := time.Now()
	if _, err = c.Send(ctx, r.users[1].name, "after restart"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// restartAsync starts replica id again. ready is sent nil as soon as it
// answers a hello (polled more often than cluster.Restart polls, since it is
// timed), or the start-up error. wait waits for both goroutines and returns
// cluster.Restart's error; it may be called more than once, and must be
// called before the phase returns, so that no process is launched after the
// cluster is closed.
func (r *runner) restartAsync(ctx context.Context, id int) (ready <-chan error, wait func() error) {
	rdy := make(chan error, 1)
	send := func(err error) {
		select { // only the first outcome counts
		case rdy <- err:
		default:
		}
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var restartErr error
	wg.Go(func() {
		if err := r.cl.Restart(ctx, id); err != nil {
			restartErr = fmt.Errorf("restart replica %d: %w", id, err)
			send(restartErr)
			stopPoll()
		}
	})
	wg.Go(func() {
		err := pollEvery(pollCtx, pollInterval, func() (bool, error) {
			if err, exited := r.cl.Exited(id); exited {
				return false, fmt.Errorf("replica %d exited while starting: %v (log %s)", id, err, r.cl.LogPath(id))
			}
			return r.cl.Pid(id) != 0 && helloOK(pollCtx, r.addrs[id]), nil
		})
		send(err)
	})
	return rdy, sync.OnceValue(func() error {
		wg.Wait()
		stopPoll()
		return restartErr
	})
}

// waitInSync waits until the primary counts replica id in sync and id's log
// ends where the primary's does, and returns that log end.
func (r *runner) waitInSync(ctx context.Context, id int) (uint64, error) {
	var end uint64
	var last string
	err := pollEvery(ctx, pollInterval, func() (bool, error) {
		p, err := findPrimary(ctx, r.addrs, -1, r.opts.PhaseTimeout)
		if err != nil {
			return false, err
		}
		pst, err := statusOf(ctx, r.addrs[p])
		if err != nil {
			last = err.Error()
			return false, nil
		}
		pe, ok1 := entry(pst, p)
		be, ok2 := entry(pst, id)
		if !ok1 || !ok2 || !be.InSync {
			last = fmt.Sprintf("primary %d does not count replica %d in sync", p, id)
			return false, nil
		}
		if id == p {
			end = pe.LogEnd
			return true, nil
		}
		st, err := statusOf(ctx, r.addrs[id])
		if err != nil {
			last = err.Error()
			return false, nil
		}
		self, ok := entry(st, id)
		if !ok || self.LogEnd != pe.LogEnd {
			last = fmt.Sprintf("replica %d log end %d, primary %d log end %d", id, self.LogEnd, p, pe.LogEnd)
			return false, nil
		}
		end = pe.LogEnd
		return true, nil
	})
	if err != nil && last != "" {
		err = fmt.Errorf("%w (last seen: %s)", err, last)
	}
	return end, err
}

// backupOf returns the first replica other than the primary p.
func (r *runner) backupOf(p int) int {
	return (p + 1) % len(r.addrs)
}

func (r *runner) finish() Result {
	res := r.res
	lat := r.rec.latencySnapshot()
	res.LatencyMs = LatencyMs{P50: ms(lat.Quantile(0.5)), P99: ms(lat.Quantile(0.99)), P999: ms(lat.Quantile(0.999))}
	lag := r.lag.figures()
	res.LagMs = lagMs(&lag.durable)
	res.LagAppliedMs = lagMs(&lag.applied)
	res.LagSamples, res.LagSamplesTotal, res.LagSamplesDropped = lag.durable.Count(), lag.samples, lag.dropped
	res.SendsTotal = r.rec.sends.Load()
	res.Pushes = r.rec.pushes.Load()
	res.Deletes = r.rec.deletes.Load()
	for id := range r.addrs {
		r.readRSS(id)
	}
	res.RSSMB = map[string]float64{}
	for id, mb := range r.rss {
		res.RSSMB[strconv.Itoa(id)] = mb
	}
	res.DiskBytes = r.disk.series()
	res.DiskGrowth = diskGrowth(res.DiskBytes, r.loadFrom, r.loadTo, res.Sends)
	res.Timeline = Timeline{Latency: r.rec.latencyPoints(), Lag: lag.points, Marks: r.marks, Disk: res.DiskBytes}
	res.evaluate()
	return res
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
