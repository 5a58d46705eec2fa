package replicatest

import (
	"errors"
	"fmt"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// client is a simulated client: one request at a time, retried with the
// same sequence until acknowledged (as the client library does), or given up
// after every replica refused it definitively.
type client struct {
	id      string
	seq     uint64
	pending bool
	sentAt  int64
	// accepted lists the nodes that took the pending request into their
	// log; taken is true once any node did (its fate is then unknown
	// until acknowledged: a definite refusal elsewhere proves nothing).
	accepted []replica.NodeID
	taken    bool
}

// clientStep lets each client send a new request or retry its pending one.
func (c *Cluster) clientStep() error {
	for _, cl := range c.clients {
		switch {
		case !cl.pending && c.Traffic && c.rng.Float64() < c.opts.ProposeProb:
			c.newRequest(cl)
			c.send(cl)
		case cl.pending && c.Now-cl.sentAt >= int64(c.opts.RetryTicks):
			c.send(cl)
		}
	}
	return nil
}

func (c *Cluster) newRequest(cl *client) ClientSeq {
	cl.seq++
	cl.pending, cl.accepted, cl.taken = true, nil, false
	k := ClientSeq{cl.id, cl.seq}
	c.issued[k] = true
	return k
}

// send proposes a client's pending request to a random running node; a
// refusal is retried later (the client library follows hints the same way).
// A paused node may get it too: it then waits in that node's queue until
// the node resumes (QueueProb).
func (c *Cluster) send(cl *client) {
	cl.sentAt = c.Now
	k := ClientSeq{cl.id, cl.seq}
	refused, final := 0, false
	for _, i := range c.rng.Perm(len(c.Nodes)) {
		s := c.Nodes[i]
		if s.Down() {
			continue
		}
		if s.paused(c.Now) {
			if c.Faults && c.rng.Float64() < c.opts.QueueProb {
				s.queued = append(s.queued, k)
				c.Stats.Queued++
				c.Tracef("QUEUE %v on paused n%d", k, s.ID)
				return
			}
			continue
		}
		_, err := c.Propose(s.ID, cl.id, cl.seq)
		if err == nil {
			cl.accepted = append(cl.accepted, s.ID)
			cl.taken = true
			return
		}
		if errors.Is(err, errCrashedAfterTaking) {
			cl.taken = true
			continue
		}
		refused++
		if errors.Is(err, ErrFinal) {
			final = true
			break
		}
	}
	if !cl.taken && (final || (refused > 0 && c.Faults && c.rng.Float64() < c.opts.AbandonProb)) {
		// Every attempt was refused before anything entered a log: the
		// client trusts that and gives the request up.
		c.Tracef("ABANDON %v after definite refusals (final answer: %v)", k, final)
		c.refused[k] = true
		c.Stats.Refused++
		cl.pending, cl.accepted = false, nil
		return
	}
	// Nobody accepted: retry soon.
	cl.sentAt = c.Now - int64(c.opts.RetryTicks) + 5
}

// takeQueued gives node s a request that waited in its queue while it was
// paused, if its client still waits for it.
func (c *Cluster) takeQueued(s *SimNode, k ClientSeq) error {
	for _, cl := range c.clients {
		if cl.id != k.Client || !cl.pending || cl.seq != k.Seq {
			continue
		}
		_, err := c.Propose(s.ID, k.Client, k.Seq)
		switch {
		case err == nil:
			cl.accepted = append(cl.accepted, s.ID)
			cl.taken = true
		case errors.Is(err, errCrashedAfterTaking):
			cl.taken = true
		}
	}
	return c.err
}

// Propose proposes client request (clientID, seq) on node id, with the
// record the application decides against that node's state.
func (c *Cluster) Propose(id replica.NodeID, clientID string, seq uint64) (eventlog.Offset, error) {
	s := c.node(id)
	if s.Down() {
		return 0, errors.New("node down")
	}
	k := ClientSeq{clientID, seq}
	c.issued[k] = true
	typ, data, err := c.app.Request(s.SM, clientID, seq)
	if err != nil {
		return 0, fmt.Errorf("refused by the application: %w", err)
	}
	off, err := s.Node.Propose([]eventlog.Record{{Type: typ, ClientID: clientID, Seq: seq, Time: c.Now, Data: data}})
	if err != nil {
		return 0, err
	}
	c.Tracef("PROPOSE %v on n%d at %d", k, id, off)
	if err := c.readyOrDefer(s); err != nil {
		return 0, err
	}
	if s.Down() {
		// It crashed persisting the Ready: the record may or may not be
		// on its disk. No answer reaches the client, and no definite one.
		return 0, errCrashedAfterTaking
	}
	return off, nil
}

// ErrFinal, wrapped by an App's Request error, makes the refusal an answer
// its client accepts (a domain error, such as "user exists"): a client whose
// request no node has taken gives it up at once, in any phase, as a client
// told a definite error does, and the request must never be applied (as
// with AbandonProb). A client whose request some node took keeps retrying:
// that copy may still land. Other Request errors are refusals the client
// retries elsewhere.
var ErrFinal = errors.New("replicatest: final refusal")

// errCrashedAfterTaking: the node took the request and crashed before
// answering; its fate is unknown.
var errCrashedAfterTaking = errors.New("the node crashed after taking the request")

// AckedCount is the number of acknowledged client requests.
func (c *Cluster) AckedCount() int { return len(c.Acked) }

// Submit makes client i send a new request (its next sequence) to whichever
// node accepts it; it retries like the random clients do.
func (c *Cluster) Submit(i int) ClientSeq {
	cl := c.clients[i]
	k := c.newRequest(cl)
	c.send(cl)
	return k
}

// Pending reports whether client i's last request awaits its ack.
func (c *Cluster) Pending(i int) bool { return c.clients[i].pending }

// Abandon makes client i give up its pending request (it stays issued, so
// if it lands later it is no phantom, but it is not acknowledged).
func (c *Cluster) Abandon(i int) { c.clients[i].pending, c.clients[i].accepted = false, nil }

// SubmitTo makes client i send a new request to node id only; it reports
// whether the node accepted it. The client keeps retrying on any node.
func (c *Cluster) SubmitTo(i int, id replica.NodeID) (ClientSeq, error) {
	cl := c.clients[i]
	k := c.newRequest(cl)
	cl.sentAt = c.Now
	if _, err := c.Propose(id, cl.id, cl.seq); err != nil {
		return k, err
	}
	cl.accepted = append(cl.accepted, id)
	cl.taken = true
	return k, nil
}

// QueueTo makes client i send a new request to paused node id: it waits in
// the node's queue until the node resumes.
func (c *Cluster) QueueTo(i int, id replica.NodeID) error {
	s := c.node(id)
	if !s.paused(c.Now) {
		return fmt.Errorf("n%d is not paused", id)
	}
	cl := c.clients[i]
	k := c.newRequest(cl)
	cl.sentAt = c.Now
	s.queued = append(s.queued, k)
	c.Stats.Queued++
	c.Tracef("QUEUE %v on paused n%d", k, id)
	return nil
}

// AckedBy reports whether client i's last request was acknowledged by node id.
func (c *Cluster) AckedBy(i int, id replica.NodeID) bool {
	cl := c.clients[i]
	by, ok := c.ackedBy[ClientSeq{cl.id, cl.seq}]
	return ok && by == id
}
