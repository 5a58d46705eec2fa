package e2e

// The harness of the chaos tests (chaos_test.go): a three-replica cluster
// behind the fault-injecting proxy (bench/netfault), a closed-loop load of
// client-library users and raw wire clients that records the outcome of
// every send, fault helpers that log a timeline, and what is read once the
// faults are over, from the outside only: the users' histories and the
// replicas' logs (chatreplay). The verdict is in chaos_report_test.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/bench/netfault"
	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

const (
	// chaosUsers is the number of client-library users of every scenario,
	// each sending to the others as fast as its acks come back.
	chaosUsers    = 12
	chaosPassword = "pw"
	// The library clients' timeouts. A request without an answer is
	// retried (same seq) after chaosRequestTimeout, about the failure
	// timeout, so that a client stuck on a primary that lost its backups
	// looks for the primary again (and may find the other side's); a send
	// that finds no primary for chaosFailoverTimeout ends with an unknown
	// outcome, and its sender goes on with its next message.
	chaosRequestTimeout  = time.Second
	chaosFailoverTimeout = 10 * time.Second
	// rawAnswerTimeout is how long a raw client waits for the answer to
	// its one request in flight: longer than any pause, so that a request
	// queued on a paused primary is answered by it after SIGCONT.
	rawAnswerTimeout = 8 * time.Second
	// quietFor is how long the converged cluster's log end must stay
	// unchanged, with the load stopped, before it is checked: re-submitted
	// records would move it.
	quietFor = 3 * time.Second
	// convergeTimeout bounds the wait for convergence after the faults
	// (a replica that truncated may rebuild its state first).
	convergeTimeout = 90 * time.Second
	// stopGrace bounds the senders' last sends once the load is stopped;
	// afterwards they are cancelled (their outcome is unknown).
	stopGrace = 2 * chaosFailoverTimeout
)

// chaosSeed returns the seed of a scenario's random choices: from
// $REPLICHAT_CHAOS_SEED when set, else from the clock. It is logged, so a
// failing run can be repeated with the same choices (the timing of a real
// cluster still varies).
func chaosSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("REPLICHAT_CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "REPLICHAT_CHAOS_SEED")
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// outcome is what a sender learned about one send.
type outcome int

const (
	inFlight outcome = iota // no answer yet
	acked                   // acknowledged, with a message id
	definite                // refused with a code that means "not applied"
	unknown                 // no answer, a timeout, or given up on
)

func (o outcome) String() string {
	return [...]string{"in flight", "acked", "definite", "unknown"}[o]
}

// outcomeUnknownCodes are the error codes that leave a request's fate open:
// wire's timeout, and the names a server may use for "outcome unknown".
// Every other code is a final answer that the request was not applied
// (docs/wire.md section 8).
var outcomeUnknownCodes = map[wire.Code]bool{
	wire.CodeTimeout: true, "outcome_unknown": true, "unknown_outcome": true,
}

// classifySend maps what client.Send returned to an outcome. Only an
// *client.Error returned as the request's final answer is definite; an
// error wrapped with ErrFailoverTimeout follows earlier attempts whose fate
// is unknown, and so do connection failures and cancellations.
func classifySend(err error) (outcome, wire.Code) {
	if err == nil {
		return acked, ""
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return unknown, ""
	}
	if errors.Is(err, client.ErrFailoverTimeout) || outcomeUnknownCodes[ce.Code] {
		return unknown, ce.Code
	}
	return definite, ce.Code
}

// sendRec is one send attempt of a chaos sender. Bodies are unique across
// the run: the sender's name and the send's index.
type sendRec struct {
	from, to, body string
	out            outcome
	id             uint64    // the acknowledged message id
	code           wire.Code // the error code, if any
	err            string
	server         int // raw clients: the replica that got the request
}

// chaosSender is one user sending messages to the other users in turn.
type chaosSender struct {
	name  string
	peers []string // recipients, in turn
	raw   bool     // a raw wire client (one attempt per seq) rather than the library

	mu    sync.Mutex
	sends []sendRec
}

func (s *chaosSender) body(i int) string { return fmt.Sprintf("%s#%06d", s.name, i) }

// begin records a new send in flight (to server, for a raw client; else
// -1) and returns its index and body.
func (s *chaosSender) begin(to string, server int) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := len(s.sends)
	b := s.body(i)
	s.sends = append(s.sends, sendRec{from: s.name, to: to, body: b, server: server})
	return i, b
}

// inFlightOn reports whether the sender's last send is waiting for an
// answer from replica server.
func (s *chaosSender) inFlightOn(server int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.sends)
	return n > 0 && s.sends[n-1].out == inFlight && s.sends[n-1].server == server
}

func (s *chaosSender) end(i int, set func(r *sendRec)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set(&s.sends[i])
}

func (s *chaosSender) snapshot() []sendRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sends)
}

// counts returns how many sends have each outcome.
func (s *chaosSender) counts() (n [4]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.sends {
		n[r.out]++
	}
	return n
}

// runLibrary sends through the client library until stop is closed (then
// after its current send) or ctx ends.
func (s *chaosSender) runLibrary(ctx context.Context, stop <-chan struct{}, cl *client.Client) {
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		to := s.peers[k%len(s.peers)]
		i, body := s.begin(to, -1)
		m, err := cl.Send(ctx, to, body)
		out, code := classifySend(err)
		s.end(i, func(r *sendRec) {
			r.out, r.code = out, code
			if err != nil {
				r.err = err.Error()
				return
			}
			r.id = m.ID
			if m.Body != body || m.From != s.name || m.To != to {
				r.err = fmt.Sprintf("acknowledged as %+v", m)
			}
		})
		if errors.Is(err, client.ErrClosed) {
			return
		}
		if err != nil {
			pause(ctx, 10*time.Millisecond)
		}
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// rawConn is a raw client's connection to a replica that said it is the
// primary, logged in.
type rawConn struct {
	wc     *wire.Conn
	server int
	nextID uint64
}

// runRaw sends with wire frames, one request in flight, each sequence
// number sent once and never retried: the client DESIGN.md's "definite
// errors are definite" protects, which (unlike the library) does not
// resolve a not_primary answer by retrying it. After any answer but an ack,
// or none, it finds the primary again.
func (s *chaosSender) runRaw(ctx context.Context, stop <-chan struct{}, addrs []string) {
	clientID := "raw-" + s.name
	var (
		seq  uint64
		conn *rawConn
		hint string
	)
	defer func() {
		if conn != nil {
			conn.wc.Close()
		}
	}()
	for k := 0; ; {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if conn == nil {
			var err error
			if conn, hint, err = rawConnect(ctx, addrs, hint, clientID, s.name); err != nil {
				pause(ctx, 50*time.Millisecond)
				continue
			}
		}
		to := s.peers[k%len(s.peers)]
		k++
		seq++
		i, body := s.begin(to, conn.server)
		out, id, code, primary, err := conn.send(seq, to, body)
		s.end(i, func(r *sendRec) {
			r.out, r.id, r.code = out, id, code
			if err != nil {
				r.err = err.Error()
			}
		})
		if out != acked {
			conn.wc.Close()
			conn, hint = nil, primary
		}
	}
}

// send sends one request and waits for its answer.
func (c *rawConn) send(seq uint64, to, body string) (out outcome, id uint64, code wire.Code, primary string, err error) {
	c.nextID++
	req, err := wire.NewRequest(c.nextID, wire.OpSend, seq, wire.SendRequest{To: to, Body: body})
	if err != nil {
		return unknown, 0, "", "", err
	}
	c.wc.NetConn().SetDeadline(time.Now().Add(rawAnswerTimeout))
	if err := c.wc.WriteFrame(req); err != nil {
		return unknown, 0, "", "", err
	}
	for {
		f, err := c.wc.ReadFrame()
		if err != nil {
			return unknown, 0, "", "", err
		}
		if f.Kind != wire.KindResponse || f.ID != req.ID {
			continue
		}
		if f.Error != nil {
			if outcomeUnknownCodes[f.Error.Code] {
				return unknown, 0, f.Error.Code, f.Error.Primary, f.Error
			}
			return definite, 0, f.Error.Code, f.Error.Primary, f.Error
		}
		var resp wire.SendResponse
		if err := wire.Decode(f.Body, &resp); err != nil {
			return unknown, 0, "", "", err
		}
		if resp.Message.Body != body {
			return acked, resp.Message.ID, "", "", fmt.Errorf("acknowledged as %+v", resp.Message)
		}
		return acked, resp.Message.ID, "", "", nil
	}
}

// rawConnect finds a replica that says it is primary (hint first) and logs
// in on it. It returns the hint to try next when it finds none.
func rawConnect(ctx context.Context, addrs []string, hint, clientID, user string) (*rawConn, string, error) {
	queue := slices.Clone(addrs)
	if hint != "" {
		queue = append([]string{hint}, queue...)
	}
	var last error
	for _, addr := range queue {
		c, ok, err := rawDial(ctx, addr, clientID)
		if err != nil {
			last = err
			continue
		}
		if ok.Role != wire.RolePrimary {
			c.wc.Close()
			last = fmt.Errorf("%s is %s", addr, ok.Role)
			if ok.Primary != "" {
				hint = ok.Primary
			}
			continue
		}
		if err := c.login(user); err != nil {
			c.wc.Close()
			last = err
			continue
		}
		return c, "", nil
	}
	return nil, hint, fmt.Errorf("no primary: %w", last)
}

func rawDial(ctx context.Context, addr, clientID string) (*rawConn, wire.HelloOK, error) {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, wire.HelloOK{}, err
	}
	wc := wire.NewConn(nc, 0)
	ok, err := wc.Handshake(dctx, wire.Hello{Role: wire.RoleClient, ClientID: clientID, Software: "replichat-e2e-raw"})
	if err != nil {
		wc.Close()
		return nil, wire.HelloOK{}, err
	}
	return &rawConn{wc: wc, server: int(ok.ServerID), nextID: 1}, ok, nil
}

func (c *rawConn) login(user string) error {
	c.nextID++
	req, err := wire.NewRequest(c.nextID, wire.OpLogin, 0, wire.LoginRequest{User: user, Password: chaosPassword})
	if err != nil {
		return err
	}
	c.wc.NetConn().SetDeadline(time.Now().Add(2 * time.Second))
	if err := c.wc.WriteFrame(req); err != nil {
		return err
	}
	for {
		f, err := c.wc.ReadFrame()
		if err != nil {
			return err
		}
		if f.Kind == wire.KindResponse && f.ID == req.ID {
			if f.Error != nil {
				return f.Error
			}
			return nil
		}
	}
}

// chaos is one scenario: the cluster, its load, and the timeline of faults.
type chaos struct {
	t     *testing.T
	c     *cluster.Cluster
	p     *netfault.Proxy
	seed  uint64
	rng   *rand.Rand
	start time.Time

	senders []*chaosSender
	readers map[string]*client.Client // one logged-in client per user, for the final reads

	loadCancel context.CancelFunc
	stopLoad   chan struct{}
	loadWG     sync.WaitGroup
	stopped    bool
}

// chaosOptions shape a scenario's load.
type chaosOptions struct {
	// raw is the number of raw wire senders, on top of the chaosUsers
	// library users.
	raw int
}

// startChaos starts a proxied three-replica cluster, registers the users
// and starts the load.
func startChaos(t *testing.T, opts chaosOptions) *chaos {
	t.Helper()
	seed := chaosSeed(t)
	t.Logf("seed %d (repeat the choices with REPLICHAT_CHAOS_SEED=%d go test -run '^%s$' ./cmd/e2e/)", seed, seed, t.Name())
	c, err := cluster.Start(t.Context(), cluster.Config{Chatd: bins.Chatd, Dir: t.TempDir(), Replicas: 3, Args: chatdArgs, Proxied: true})
	require.NoError(t, err)
	ch := &chaos{t: t, c: c, p: c.Proxy(), seed: seed, rng: rand.New(rand.NewPCG(seed, 0x6368616f73)), start: time.Now(), readers: make(map[string]*client.Client)}
	t.Cleanup(func() {
		ch.stop()
		c.Close()
		if t.Failed() {
			for id := range 3 {
				t.Logf("replica %d log (%s), last 8 KiB:\n%s", id, c.LogPath(id), tailFile(c.LogPath(id), 8<<10))
			}
		}
	})
	waitPrimary(t, c)

	var names []string
	for i := range chaosUsers {
		names = append(names, fmt.Sprintf("u%02d", i))
	}
	for i := range opts.raw {
		names = append(names, fmt.Sprintf("r%02d", i))
	}
	for i, name := range names {
		cl := ch.newClient(i)
		require.NoError(t, cl.Register(t.Context(), name, chaosPassword), "register %s", name)
		_, err := cl.Login(t.Context(), name, chaosPassword)
		require.NoError(t, err)
		ch.readers[name] = cl
		// Everyone sends to the library users, starting with the next one.
		var peers []string
		for k := 1; k <= chaosUsers; k++ {
			if p := names[(i+k)%chaosUsers]; p != name {
				peers = append(peers, p)
			}
		}
		ch.senders = append(ch.senders, &chaosSender{name: name, peers: peers, raw: i >= chaosUsers})
	}

	ctx, cancel := context.WithCancel(t.Context())
	ch.loadCancel, ch.stopLoad = cancel, make(chan struct{})
	for i, s := range ch.senders {
		if s.raw {
			addrs := ch.servers(i)
			ch.loadWG.Go(func() { s.runRaw(ctx, ch.stopLoad, addrs) })
		} else {
			cl := ch.readers[s.name]
			ch.loadWG.Go(func() { s.runLibrary(ctx, ch.stopLoad, cl) })
		}
	}
	ch.logf("load started: %d library users, %d raw clients", chaosUsers, opts.raw)
	return ch
}

// servers is the cluster's address list rotated by k: clients configured
// in different orders, so that after a failure they look for the primary
// on different sides of a partition first.
func (ch *chaos) servers(k int) []string {
	a := ch.c.Addrs()
	k %= len(a)
	return append(a[k:], a[:k]...)
}

func (ch *chaos) newClient(k int) *client.Client {
	cl, err := client.New(client.Config{Servers: ch.servers(k), RequestTimeout: chaosRequestTimeout, FailoverTimeout: chaosFailoverTimeout})
	require.NoError(ch.t, err)
	ch.t.Cleanup(func() { cl.Close() })
	return cl
}

// logf logs a line of the scenario's timeline.
func (ch *chaos) logf(format string, args ...any) {
	ch.t.Helper()
	ch.t.Logf("%7.3fs "+format, append([]any{time.Since(ch.start).Seconds()}, args...)...)
}

// stop stops the load: every sender finishes its current send (for up to
// stopGrace, then it is cancelled). Idempotent.
func (ch *chaos) stop() {
	if ch.stopped {
		return
	}
	ch.stopped = true
	close(ch.stopLoad)
	done := make(chan struct{})
	go func() { ch.loadWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopGrace):
		ch.loadCancel()
		<-done
	}
	ch.loadCancel()
}

// totals sums the senders' outcomes.
func (ch *chaos) totals() (n [4]int) {
	for _, s := range ch.senders {
		c := s.counts()
		for i := range n {
			n[i] += c[i]
		}
	}
	return n
}

// waitAckedMore waits until n more sends are acknowledged than now.
func (ch *chaos) waitAckedMore(n int) {
	ch.t.Helper()
	want := ch.totals()[acked] + n
	deadline := time.Now().Add(30 * time.Second)
	for ch.totals()[acked] < want {
		if time.Now().After(deadline) {
			require.FailNow(ch.t, fmt.Sprintf("the load did not make progress: %v acked, want %d", ch.totals()[acked], want))
		}
		time.Sleep(pollInterval)
	}
}

// sleep waits d, as part of the fault schedule (not to synchronize).
func (ch *chaos) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-ch.t.Context().Done():
	}
}

// between returns a random duration in [lo, hi].
func (ch *chaos) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(ch.rng.Int64N(int64(hi-lo)+1))
}

// roles asks every running, unpaused replica, on its own address, for its
// hello.
func (ch *chaos) roles() map[int]wire.HelloOK {
	out := make(map[int]wire.HelloOK)
	for id, addr := range ch.c.DirectAddrs() {
		if !ch.c.Running(id) || ch.c.Paused(id) {
			continue
		}
		ctx, cancel := context.WithTimeout(ch.t.Context(), time.Second)
		ok, err := cluster.Hello(ctx, addr)
		cancel()
		if err == nil {
			out[id] = ok
		}
	}
	return out
}

// primary returns the replica that says it is primary in the highest
// epoch, waiting up to waitTimeout for one; -1 if none.
func (ch *chaos) primary() int {
	deadline := time.Now().Add(waitTimeout)
	for {
		best, epoch := -1, uint64(0)
		for id, ok := range ch.roles() {
			if ok.Role == wire.RolePrimary && (best < 0 || ok.Epoch > epoch) {
				best, epoch = id, ok.Epoch
			}
		}
		if best >= 0 || time.Now().After(deadline) {
			return best
		}
		time.Sleep(pollInterval)
	}
}

// others are the replica ids but id.
func others(id int) []int {
	var out []int
	for j := range 3 {
		if j != id {
			out = append(out, j)
		}
	}
	return out
}

func (ch *chaos) kill(id int) {
	ch.t.Helper()
	require.NoError(ch.t, ch.c.Kill(id), "kill replica %d", id)
	ch.logf("SIGKILL replica %d", id)
}

func (ch *chaos) restart(id int) {
	ch.t.Helper()
	require.NoError(ch.t, ch.c.Restart(ch.t.Context(), id), "restart replica %d", id)
	ch.logf("restarted replica %d", id)
}

func (ch *chaos) pauseReplica(id int) {
	ch.t.Helper()
	require.NoError(ch.t, ch.c.Pause(id), "pause replica %d", id)
	ch.logf("SIGSTOP replica %d", id)
}

func (ch *chaos) resume(id int) {
	ch.t.Helper()
	require.NoError(ch.t, ch.c.Resume(id), "resume replica %d", id)
	ch.logf("SIGCONT replica %d", id)
}

// rawInFlightOn counts the raw clients whose request waits for an answer
// from replica id.
func (ch *chaos) rawInFlightOn(id int) int {
	n := 0
	for _, s := range ch.senders {
		if s.raw && s.inFlightOn(id) {
			n++
		}
	}
	return n
}

// phase runs round until d has passed since the phase started (each round
// runs to its end).
func (ch *chaos) phase(d time.Duration, round func()) {
	start := time.Now()
	for time.Since(start) < d && ch.t.Context().Err() == nil {
		round()
	}
}

// selfStatus asks the replica at addr (without logging in) for its own
// entry of the status op.
func selfStatus(ctx context.Context, addr string) (wire.ReplicaStatus, error) {
	c, ok, err := rawDial(ctx, addr, "chaos-status")
	if err != nil {
		return wire.ReplicaStatus{}, err
	}
	defer c.wc.Close()
	req, err := wire.NewRequest(2, wire.OpStatus, 0, wire.StatusRequest{})
	if err != nil {
		return wire.ReplicaStatus{}, err
	}
	c.wc.NetConn().SetDeadline(time.Now().Add(time.Second))
	if err := c.wc.WriteFrame(req); err != nil {
		return wire.ReplicaStatus{}, err
	}
	for {
		f, err := c.wc.ReadFrame()
		if err != nil {
			return wire.ReplicaStatus{}, err
		}
		if f.Kind != wire.KindResponse || f.ID != req.ID {
			continue
		}
		if f.Error != nil {
			return wire.ReplicaStatus{}, f.Error
		}
		var resp wire.StatusResponse
		if err := wire.Decode(f.Body, &resp); err != nil {
			return wire.ReplicaStatus{}, err
		}
		for _, r := range resp.Replicas {
			if r.ID == ok.ServerID {
				return r, nil
			}
		}
		return wire.ReplicaStatus{}, fmt.Errorf("replica %d's status has no entry for itself", ok.ServerID)
	}
}

// heldBytes sums the proxy's Held counts over the links between replicas:
// how often a fault really held traffic.
func (ch *chaos) heldBytes() int64 {
	var n int64
	for l, s := range ch.p.Stats() {
		if l.From != netfault.Client && l.To != netfault.Client {
			n += s.Held
		}
	}
	return n
}

// finish ends the faults (heals the network, resumes and restarts
// replicas), lets the load run on the healed cluster for a moment, stops
// it, waits until the replicas have converged and stay quiet, and checks
// every send against the users' histories and the replicas' logs.
func (ch *chaos) finish() {
	t := ch.t
	t.Helper()
	ch.p.Heal()
	for id := range 3 {
		if ch.c.Paused(id) {
			ch.resume(id)
		}
	}
	for id := range 3 {
		if !ch.c.Running(id) {
			ch.restart(id)
		}
	}
	ch.logf("faults over; sends so far %v", ch.outcomeLine())
	ch.sleep(2 * time.Second) // live traffic on the healed cluster, racing with re-submissions
	ch.stop()
	ch.logf("load stopped; sends %v", ch.outcomeLine())
	ch.waitQuiet()

	histories := make(map[string][]wire.Message)
	for _, s := range ch.senders {
		histories[s.name] = ch.history(s.name)
	}
	// Crash all three at once (well within the failure timeout, so no
	// election runs in between), then read their logs offline.
	for id := range 3 {
		require.NoError(t, ch.c.Kill(id))
	}
	evs := ch.replicasAgree()
	rep := analyzeChaos(ch.senders, histories, evs)
	for id := range 3 {
		if b, err := os.ReadFile(ch.c.LogPath(id)); err == nil {
			rep.Forks += strings.Count(string(b), "truncating below commit")
		}
	}
	t.Logf("result: %s", rep)
	rep.check(t)
}

func (ch *chaos) outcomeLine() string {
	n := ch.totals()
	return fmt.Sprintf("acked %d, definite %d, unknown %d, in flight %d", n[acked], n[definite], n[unknown], n[inFlight])
}

// waitQuiet waits until the three replicas have converged (ownStatuses:
// one primary, all in sync, equal log ends and commits) and their log end
// has not moved for quietFor.
func (ch *chaos) waitQuiet() {
	t := ch.t
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	var (
		last      []wire.ReplicaStatus
		end       uint64
		stableAt  time.Time
		converged bool
	)
	for {
		st, ok := ownStatuses(t, ch.c)
		last = st
		switch {
		case !ok:
			converged = false
		case !converged || st[0].LogEnd != end:
			converged, end, stableAt = true, st[0].LogEnd, time.Now()
		case time.Since(stableAt) >= quietFor:
			ch.logf("converged at log end %d", end)
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "the replicas did not converge after the faults", "sends: %s; statuses: %+v", ch.outcomeLine(), last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// history reads all of user's messages, oldest first, with its own client.
func (ch *chaos) history(user string) []wire.Message {
	ch.t.Helper()
	cl := ch.readers[user]
	var (
		all   []wire.Message
		after uint64
	)
	for {
		page, next, err := cl.History(ch.t.Context(), "", after, 1000)
		require.NoError(ch.t, err, "history of %s", user)
		all = append(all, page...)
		if next == 0 {
			return all
		}
		after = next
	}
}

// replicasAgree replays every (stopped) replica's log and checks that they
// print the same events and the same state digest, reporting the first
// difference rather than a diff of whole logs. It returns replica 0's
// events. (The state is folded in memory only: that chatreplay's two ways
// agree is checked by replay_test.go, and the replays are the slowest part
// of a scenario.)
func (ch *chaos) replicasAgree() []replayEvent {
	t := ch.t
	t.Helper()
	var (
		ref      []string
		refState stateSummary
	)
	for id := range 3 {
		out := replay(t, ch.c.DataDir(id), "--json").stdout
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		st := replayState(t, ch.c.DataDir(id), "--mem")
		if id == 0 {
			ref, refState = lines, st
			continue
		}
		if i := firstDifference(ref, lines); i >= 0 {
			assert.Fail(t, fmt.Sprintf("replica %d's log differs from replica 0's", id),
				"%d vs %d events; first difference at line %d:\n  0: %s\n  %d: %s",
				len(ref), len(lines), i+1, lineAt(ref, i), id, lineAt(lines, i))
		}
		assert.Equal(t, refState, st, "replica %d's state differs from replica 0's", id)
	}
	var evs []replayEvent
	for _, l := range ref {
		if l == "" {
			continue
		}
		var ev replayEvent
		require.NoError(t, json.Unmarshal([]byte(l), &ev), "replayed event %s", l)
		require.Equal(t, uint64(len(evs)+1), ev.Offset, "offsets are dense from 1")
		evs = append(evs, ev)
	}
	ch.logf("replicas agree on %d events, state %s", len(evs), refState.Digest)
	return evs
}

// firstDifference is the first index at which a and b differ, -1 if equal.
func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func lineAt(lines []string, i int) string {
	if i >= len(lines) {
		return "(end of log)"
	}
	if l := lines[i]; len(l) > 400 {
		return l[:400] + "..."
	}
	return lines[i]
}
