package clienttest

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/replichat/replichat/chat/wire"
)

// FaultMode is what an injected fault does to the request it hits.
type FaultMode int

// Fault modes.
const (
	// CutBeforeApply closes the connection without applying the request.
	CutBeforeApply FaultMode = iota + 1
	// CutAfterApply applies the request (a mutating one is then remembered
	// for deduplication) and closes the connection without answering.
	CutAfterApply
	// ReplyError answers with Fault.Code (and Fault.Primary as hint).
	ReplyError
	// Swallow neither applies nor answers; the connection stays open.
	Swallow
)

// String returns the mode's name.
func (m FaultMode) String() string {
	switch m {
	case CutBeforeApply:
		return "CutBeforeApply"
	case CutAfterApply:
		return "CutAfterApply"
	case ReplyError:
		return "ReplyError"
	case Swallow:
		return "Swallow"
	}
	return fmt.Sprintf("FaultMode(%d)", int(m))
}

// Fault is a failure injected into the next Count requests of Op received
// by the primary.
type Fault struct {
	Op      string
	Mode    FaultMode
	Count   int
	Code    wire.Code // for ReplyError
	Primary string    // for ReplyError with not_primary
}

// Request is one request a replica received after the handshake.
type Request struct {
	Server   int // index of the replica
	ClientID string
	Op       string
	Seq      uint64
	// Replayed is true when the request was answered from the
	// deduplication table instead of being applied.
	Replayed bool
}

// Cluster is a fake cluster. Its methods are safe for concurrent use.
type Cluster struct {
	replicas []*replica
	wg       sync.WaitGroup // accept loops and connection handlers

	mu       sync.Mutex
	primary  int // index of the primary; -1 when there is none
	epoch    uint64
	state    *state
	faults   []Fault
	requests []Request
	// waiting is what the replicas that are up say while there is no
	// primary ("" for none: they answer not_primary then).
	waiting string
	// outOfSync holds the replicas that are up but not in the in-sync set.
	outOfSync map[int]bool
}

// replica is one fake server.
type replica struct {
	id   int
	addr string
	mu   sync.Mutex
	ln   net.Listener          // guarded by mu
	up   bool                  // guarded by mu
	ses  map[*session]struct{} // guarded by mu: open connections
}

// Start starts n replicas on 127.0.0.1, replica 0 primary, and stops them
// when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{epoch: 1, state: newState(), outOfSync: make(map[int]bool)}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.Close()
			t.Fatalf("clienttest: listen: %v", err)
		}
		r := &replica{id: i, addr: ln.Addr().String(), ln: ln, up: true, ses: make(map[*session]struct{})}
		c.replicas = append(c.replicas, r)
		c.wg.Go(func() { c.accept(r, ln) })
	}
	t.Cleanup(c.Close)
	return c
}

// Close stops every replica and waits for their goroutines.
func (c *Cluster) Close() {
	for i := range c.replicas {
		c.Stop(i)
	}
	c.wg.Wait()
}

// Addrs returns the replicas' addresses, by index.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.replicas))
	for i, r := range c.replicas {
		out[i] = r.addr
	}
	return out
}

// Addr returns replica i's address.
func (c *Cluster) Addr(i int) string { return c.replicas[i].addr }

// SetPrimary makes replica i the primary (-1: none) in a new epoch. As a
// real replica does when it steps down, the old primary closes its
// client connections.
func (c *Cluster) SetPrimary(i int) {
	c.mu.Lock()
	old := c.primary
	c.primary = i
	c.epoch++
	c.mu.Unlock()
	if old >= 0 && old != i {
		c.Cut(old)
	}
}

// Stop stops replica i: it closes its listener and its connections.
func (c *Cluster) Stop(i int) {
	r := c.replicas[i]
	r.mu.Lock()
	r.up = false
	ln := r.ln
	r.mu.Unlock()
	_ = ln.Close()
	c.Cut(i)
}

// Restart starts replica i again, on its address, after Stop. It fails
// the test if the address was taken meanwhile.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	r := c.replicas[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.up {
		return
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatalf("clienttest: restart replica %d: %v", i, err)
	}
	r.ln, r.up = ln, true
	c.wg.Go(func() { c.accept(r, ln) })
}

// SetWaiting sets what the replicas that are up say while there is no
// primary: in their status (Waiting) and as the message of the
// unavailable error they answer requests with. "" restores not_primary.
func (c *Cluster) SetWaiting(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiting = reason
}

// SetInSync puts replica i in or out of the in-sync set (all are in at
// the start).
func (c *Cluster) SetInSync(i int, inSync bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outOfSync[i] = !inSync
}

// Cut closes every connection open to replica i.
func (c *Cluster) Cut(i int) {
	r := c.replicas[i]
	r.mu.Lock()
	ss := make([]*session, 0, len(r.ses))
	for s := range r.ses {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.close()
	}
}

// Inject adds a fault.
func (c *Cluster) Inject(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, f)
}

// Requests returns the requests received so far, in order.
func (c *Cluster) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

// AddUser creates an account, as a register from another client would.
func (c *Cluster) AddUser(name, password string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.register(name, password)
}

// Post stores a message from one user to another, as a send from another
// client would, pushes it to the recipient if listening, and returns it.
func (c *Cluster) Post(from, to, body string) wire.Message {
	c.mu.Lock()
	m, e := c.state.send(from, to, body)
	c.mu.Unlock()
	if e != nil {
		panic("clienttest: Post: " + e.Error())
	}
	c.push(m)
	return m
}

// Queued returns the ids of the messages queued (not delivered) for user.
func (c *Cluster) Queued(user string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for _, m := range c.state.queued(user, 0) {
		ids = append(ids, m.ID)
	}
	return ids
}

// Sent returns every message stored, in id order, whoever deleted it.
func (c *Cluster) Sent() []wire.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]wire.Message, 0, len(c.state.msgs))
	for _, m := range c.state.msgs {
		out = append(out, m.Message)
	}
	return out
}

func (c *Cluster) accept(r *replica, ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s := &session{c: c, r: r, wc: wire.NewConn(nc, 0)}
		r.mu.Lock()
		if !r.up {
			r.mu.Unlock()
			_ = nc.Close()
			return
		}
		r.ses[s] = struct{}{}
		r.mu.Unlock()
		c.wg.Go(func() {
			defer func() {
				r.mu.Lock()
				delete(r.ses, s)
				r.mu.Unlock()
				s.close()
			}()
			s.serve()
		})
	}
}

// role returns replica i's role, the epoch and the primary's address.
func (c *Cluster) role(i int) (role string, epoch uint64, primary string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.primary >= 0 {
		primary = c.Addr(c.primary)
	}
	if c.primary == i {
		return wire.RolePrimary, c.epoch, primary
	}
	return wire.RoleBackup, c.epoch, primary
}

// push sends m to the recipient's listening sessions on the primary.
func (c *Cluster) push(m wire.Message) {
	c.mu.Lock()
	p := c.primary
	c.mu.Unlock()
	if p < 0 {
		return
	}
	r := c.replicas[p]
	r.mu.Lock()
	var to []*session
	for s := range r.ses {
		if s.listeningAs(m.To) {
			to = append(to, s)
		}
	}
	r.mu.Unlock()
	for _, s := range to {
		s.push(m)
	}
}

// online reports whether user has a logged-in connection to the primary.
func (c *Cluster) online(user string, primary int) bool {
	if primary < 0 {
		return false
	}
	r := c.replicas[primary]
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.ses {
		if s.user() == user {
			return true
		}
	}
	return false
}

// statuses returns the cluster as every replica sees it.
func (c *Cluster) statuses() []wire.ReplicaStatus {
	c.mu.Lock()
	p, epoch, end, waiting := c.primary, c.epoch, uint64(len(c.requests)), c.waiting
	outOfSync := make(map[int]bool, len(c.outOfSync))
	for i, v := range c.outOfSync {
		outOfSync[i] = v
	}
	c.mu.Unlock()
	out := make([]wire.ReplicaStatus, len(c.replicas))
	for i, r := range c.replicas {
		r.mu.Lock()
		up := r.up
		r.mu.Unlock()
		st := wire.ReplicaStatus{ID: uint32(i), Addr: c.Addr(i), Role: wire.RoleBackup, Epoch: epoch, LogEnd: end, Commit: end, InSync: up && !outOfSync[i]}
		switch {
		case !up:
			st.Role = wire.RoleDown
		case i == p:
			st.Role = wire.RolePrimary
		case p < 0:
			st.Waiting = waiting
		}
		out[i] = st
	}
	return out
}
