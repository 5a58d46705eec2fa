package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// workload is what every user does in the load loop.
type workload struct {
	body string // every message's body
	// readEvery is how many sends a non-listening user makes between reads
	// of its queue; 0 or less: never. Every user receives about as many
	// messages as it sends, so reading a page (the server's default, 100)
	// every 20 sends keeps queues short and below the server's queue limit
	// however long the run.
	readEvery int
	// keep is Options.Keep: how many message copies a user holds before it
	// deletes the oldest; 0: never.
	keep int
}

func newWorkload(o Options) workload {
	return workload{body: strings.Repeat("x", o.Size), readEvery: o.ReadEvery, keep: o.Keep}
}

// deleteBatch is how many message ids a user deletes in one request under
// Options.Keep (the server takes up to chat.MaxIDsPerCommand).
const deleteBatch = 100

// held is the ids of the message copies a user holds, oldest first: those
// it sent (the driver adds them) and received (its listener or its reads
// add them). Safe for concurrent use.
type held struct {
	mu  sync.Mutex
	ids []uint64
}

func (h *held) add(ids ...uint64) {
	h.mu.Lock()
	h.ids = append(h.ids, ids...)
	h.mu.Unlock()
}

// takeOldest removes and returns the oldest n ids if at least keep+n are
// held, else nil.
func (h *held) takeOldest(keep, n int) []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ids) < keep+n {
		return nil
	}
	out := slices.Clone(h.ids[:n])
	h.ids = slices.Delete(h.ids, 0, n)
	return out
}

// deleteOldest deletes u's oldest message copies when it holds more than
// keep. A copy an earlier batch deleted (a push delivered again across a
// failover, so held twice; the server drops duplicates within one request)
// fails the all-or-none request with not_found: the batch is then deleted
// one id at a time, skipping those. It returns how many were deleted.
func deleteOldest(ctx context.Context, u *user, keep int) (int, error) {
	ids := u.held.takeOldest(keep, deleteBatch)
	if ids == nil {
		return 0, nil
	}
	_, err := u.c.DeleteMessages(ctx, ids)
	switch {
	case err == nil:
		return len(ids), nil
	case !notFound(err):
		return 0, fmt.Errorf("%s delete %d messages: %w", u.name, len(ids), err)
	}
	n := 0
	for _, id := range ids {
		_, err := u.c.DeleteMessages(ctx, []uint64{id})
		switch {
		case notFound(err):
		case err != nil:
			return n, fmt.Errorf("%s delete message %d: %w", u.name, id, err)
		default:
			n++
		}
	}
	return n, nil
}

// notFound reports whether err is the server's not_found.
func notFound(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Code == wire.CodeNotFound
}

// listens reports whether user i of a run listens for pushes when the
// fraction f of users do: the listeners are spread evenly over the users,
// ceil(n*f) of n, and with f = 0.5 they are the even-numbered ones.
func listens(i int, f float64) bool {
	// The epsilon keeps products such as 3*0.1 from rounding up a whole user.
	const eps = 1e-9
	return math.Ceil(float64(i+1)*f-eps) > math.Ceil(float64(i)*f-eps)
}

// benchPassword is every bench user's password.
const benchPassword = "chatbench-password"

// user is one simulated chat user: its own client (own client id, own
// connection) and whether it listens for pushes.
type user struct {
	idx    int
	name   string
	c      *client.Client
	listen bool
	held   held // under Options.Keep only
}

// recorder collects what the load workers and the lag poller observe. Its
// methods are safe for concurrent use.
type recorder struct {
	origin time.Time

	mu sync.Mutex
	// measuring is true during the load phase: only then do sends count
	// toward the steady-state figures (sends/s, latency).
	measuring bool
	phaseHist Histogram // send latency during the load phase
	latency   *Series   // send latency over the whole run
	// killAt is when the primary was killed (Unix ns), 0 when no failover is
	// being timed. firstAck is the first acknowledgement of a send that a new
	// primary accepted after killAt; failoverDone is closed then.
	killAt       int64
	firstAck     time.Time
	failoverDone chan struct{}

	sends   atomic.Uint64 // acknowledged sends over the whole run
	pushes  atomic.Uint64 // messages handed to listeners
	reads   atomic.Uint64 // messages delivered by read
	deletes atomic.Uint64 // message copies deleted (Options.Keep)
	errText atomic.Value  // first listener error, as a string
}

func newRecorder(origin time.Time, window time.Duration) *recorder {
	return &recorder{origin: origin, latency: NewSeries(origin, window)}
}

// startTimeline restarts the latency series at origin, before any send.
func (r *recorder) startTimeline(origin time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.origin = origin
	r.latency = NewSeries(origin, r.latency.window)
}

// sent records one acknowledged send that started at start and was
// acknowledged at end.
func (r *recorder) sent(start, end time.Time, m wire.Message) {
	r.sends.Add(1)
	d := end.Sub(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency.Add(end, d)
	if r.measuring {
		r.phaseHist.Record(d)
	}
	// SentAt is the accepting primary's clock: a dead process assigns none,
	// so a send stamped after the kill was accepted by the new primary.
	if r.killAt != 0 && r.firstAck.IsZero() && m.SentAt > r.killAt {
		r.firstAck = end
		close(r.failoverDone)
	}
}

// setMeasuring starts or stops the steady-state measurement.
func (r *recorder) setMeasuring(on bool) {
	r.mu.Lock()
	r.measuring = on
	r.mu.Unlock()
}

// armFailover starts timing a failover whose kill happens at killAt and
// returns the channel closed at the first acknowledgement after it.
func (r *recorder) armFailover(killAt time.Time) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killAt = killAt.UnixNano()
	r.firstAck = time.Time{}
	r.failoverDone = make(chan struct{})
	return r.failoverDone
}

// failoverAck returns the time of the first acknowledgement after the kill.
func (r *recorder) failoverAck() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstAck
}

// latencySnapshot returns a copy of the load phase's latency histogram.
func (r *recorder) latencySnapshot() Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h Histogram
	h.Merge(&r.phaseHist)
	return h
}

func (r *recorder) latencyPoints() []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latency.Points()
}

// listenErr returns the first error a listener ended with, "" if none.
func (r *recorder) listenErr() string {
	s, _ := r.errText.Load().(string)
	return s
}

// connectUsers dials one client per user, registers and logs each in, in
// parallel. On error the clients already made are closed.
// A fraction listen of them listen for pushes (see listens).
func connectUsers(ctx context.Context, addrs []string, n int, listen float64, cfg client.Config, logger *slog.Logger) ([]*user, error) {
	users := make([]*user, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			c := cfg
			c.Servers = addrs
			c.Logger = logger.With("user", i)
			cl, err := client.Dial(gctx, c)
			if err != nil {
				return fmt.Errorf("dial for user %d: %w", i, err)
			}
			u := &user{idx: i, name: fmt.Sprintf("bench-%d", i), c: cl, listen: listens(i, listen)}
			users[i] = u
			if err := cl.Register(gctx, u.name, benchPassword); err != nil {
				return fmt.Errorf("register %s: %w", u.name, err)
			}
			if _, err := cl.Login(gctx, u.name, benchPassword); err != nil {
				return fmt.Errorf("log in %s: %w", u.name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		closeUsers(users)
		return nil, err
	}
	return users, nil
}

func closeUsers(users []*user) {
	for _, u := range users {
		if u != nil {
			u.c.Close()
		}
	}
}

// listeners runs Listen for every listening user until ctx ends. Messages are
// counted; a listener that ends with an error other than ctx's records it.
// The returned function waits for them to stop.
func listeners(ctx context.Context, users []*user, rec *recorder, w workload) (wait func()) {
	var wg sync.WaitGroup
	for _, u := range users {
		if !u.listen {
			continue
		}
		wg.Go(func() {
			err := u.c.Listen(ctx, func(m wire.Message) error {
				rec.pushes.Add(1)
				if w.keep > 0 {
					u.held.add(m.ID)
				}
				return nil
			})
			if err != nil && ctx.Err() == nil && !errors.Is(err, client.ErrClosed) {
				rec.errText.CompareAndSwap(nil, fmt.Sprintf("listen as %s: %v", u.name, err))
			}
		})
	}
	return wg.Wait
}

// drive makes every user send messages to the others, round robin, until ctx
// ends or, when stop is non-nil, until stop returns true (checked after each
// send). Non-listening users read their queue every w.readEvery sends;
// under w.keep, users delete their oldest message copies as they go. The
// first send or read error ends the run and is returned; ctx's end is not an
// error.
func drive(ctx context.Context, users []*user, rec *recorder, w workload, stop func() bool) error {
	g, gctx := errgroup.WithContext(ctx)
	body, readEvery := w.body, w.readEvery
	for _, u := range users {
		g.Go(func() error {
			n := len(users)
			for k := 0; ; k++ {
				if gctx.Err() != nil || (stop != nil && stop()) {
					return nil
				}
				to := users[(u.idx+1+k%(n-1))%n].name
				start := time.Now()
				m, err := u.c.Send(gctx, to, body)
				if err != nil {
					if gctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("%s send to %s: %w", u.name, to, err)
				}
				rec.sent(start, time.Now(), m)
				if w.keep > 0 {
					u.held.add(m.ID)
				}
				if !u.listen && readEvery > 0 && k%readEvery == readEvery-1 {
					msgs, err := u.c.Read(gctx, 0)
					if err != nil {
						if gctx.Err() != nil {
							return nil
						}
						return fmt.Errorf("%s read: %w", u.name, err)
					}
					rec.reads.Add(uint64(len(msgs)))
					if w.keep > 0 {
						for _, m := range msgs {
							u.held.add(m.ID)
						}
					}
				}
				if w.keep > 0 {
					n, err := deleteOldest(gctx, u, w.keep)
					rec.deletes.Add(uint64(n))
					if err != nil {
						if gctx.Err() != nil {
							return nil
						}
						return err
					}
				}
			}
		})
	}
	err := g.Wait()
	if err == nil {
		if s := rec.listenErr(); s != "" {
			err = errors.New(s)
		}
	}
	return err
}
