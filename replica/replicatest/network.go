package replicatest

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/replichat/replichat/replica"
)

// NetworkOptions are the network's fault knobs (TigerBeetle's packet
// simulator). Probabilities are per message unless said otherwise.
type NetworkOptions struct {
	// DropProb loses a message; DupProb delivers it twice.
	DropProb, DupProb float64
	// DelayMinTicks + an exponential of mean DelayMeanTicks, capped at
	// DelayMaxTicks (0: uncapped), is a message's delay.
	DelayMinTicks, DelayMeanTicks, DelayMaxTicks int
	// FIFO delivers in send order per path (TCP); otherwise random delays
	// reorder messages.
	FIFO bool
	// BreakProb, per tick, breaks one random connection: every message in
	// flight between two nodes (both ways) is lost, as when TCP resets.
	BreakProb float64
	// PartitionProb, per tick, splits the nodes into two sides (if not
	// split); HealProb, per tick, heals the split.
	PartitionProb, HealProb float64
	// MaxInflightPerPath bounds the messages queued on one path; more are
	// dropped (0: unbounded).
	MaxInflightPerPath int
}

type envelope struct {
	due int64
	seq uint64
	msg replica.Message
}

// Network holds messages in flight. Not safe for concurrent use.
type Network struct {
	opts NetworkOptions
	rng  *rand.Rand
	// queue is sorted by (due, seq).
	queue []envelope
	seq   uint64
	// lastDue[path] is the latest due time on a path (FIFO).
	lastDue map[[2]replica.NodeID]int64
	// side[id] is the node's side of the partition; nil when healed.
	side map[replica.NodeID]int
	// blocked paths drop matching messages (scripted tests).
	blocks []block
}

type block struct {
	from, to replica.NodeID
	match    func(replica.Message) bool
}

// NewNetwork returns an empty network using rng for its faults.
func NewNetwork(opts NetworkOptions, rng *rand.Rand) *Network {
	return &Network{opts: opts, rng: rng, lastDue: map[[2]replica.NodeID]int64{}}
}

// Send queues m at time now, or loses it.
func (n *Network) Send(now int64, m replica.Message) {
	for _, b := range n.blocks {
		if b.from == m.From && b.to == m.To && (b.match == nil || b.match(m)) {
			return
		}
	}
	if n.rng.Float64() < n.opts.DropProb {
		return
	}
	path := [2]replica.NodeID{m.From, m.To}
	if max := n.opts.MaxInflightPerPath; max > 0 {
		count := 0
		for _, e := range n.queue {
			if e.msg.From == m.From && e.msg.To == m.To {
				count++
			}
		}
		if count >= max {
			return
		}
	}
	copies := 1
	if n.rng.Float64() < n.opts.DupProb {
		copies = 2
	}
	for range copies {
		due := now + n.delay()
		if n.opts.FIFO {
			due = max(due, n.lastDue[path])
			n.lastDue[path] = due
		}
		n.seq++
		e := envelope{due: due, seq: n.seq, msg: m}
		i, _ := slices.BinarySearchFunc(n.queue, e, func(a, b envelope) int {
			return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.seq, b.seq))
		})
		n.queue = slices.Insert(n.queue, i, e)
	}
}

func (n *Network) delay() int64 {
	d := float64(n.opts.DelayMinTicks)
	if n.opts.DelayMeanTicks > 0 {
		d += n.rng.ExpFloat64() * float64(n.opts.DelayMeanTicks)
	}
	if n.opts.DelayMaxTicks > 0 {
		d = math.Min(d, float64(n.opts.DelayMaxTicks))
	}
	return max(1, int64(d))
}

// Next pops the next message due at or before now; ok is false if none.
// A message across a partition is lost at delivery time.
func (n *Network) Next(now int64) (replica.Message, bool) {
	for len(n.queue) > 0 && n.queue[0].due <= now {
		e := n.queue[0]
		n.queue = n.queue[1:]
		if n.side != nil && n.side[e.msg.From] != n.side[e.msg.To] {
			continue
		}
		return e.msg, true
	}
	return replica.Message{}, false
}

// Defer re-queues m for delivery at time due (its receiver is paused).
func (n *Network) Defer(due int64, m replica.Message) {
	n.seq++
	e := envelope{due: due, seq: n.seq, msg: m}
	i, _ := slices.BinarySearchFunc(n.queue, e, func(a, b envelope) int {
		return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.seq, b.seq))
	})
	n.queue = slices.Insert(n.queue, i, e)
}

// Break loses every message in flight between a and b.
func (n *Network) Break(a, b replica.NodeID) {
	n.queue = slices.DeleteFunc(n.queue, func(e envelope) bool {
		return (e.msg.From == a && e.msg.To == b) || (e.msg.From == b && e.msg.To == a)
	})
}

// DropTo loses every message in flight to id (it crashed).
func (n *Network) DropTo(id replica.NodeID) {
	n.queue = slices.DeleteFunc(n.queue, func(e envelope) bool { return e.msg.To == id })
}

// Partition splits the nodes: side[id] names each node's side.
func (n *Network) Partition(side map[replica.NodeID]int) { n.side = side }

// Heal removes the partition.
func (n *Network) Heal() { n.side = nil }

// cut reports whether a partition separates a and b.
func (n *Network) cut(a, b replica.NodeID) bool { return n.side != nil && n.side[a] != n.side[b] }

// Partitioned reports whether a partition is in effect.
func (n *Network) Partitioned() bool { return n.side != nil }

// Block drops messages from -> to for which match returns true (every
// message if match is nil), until Unblock.
func (n *Network) Block(from, to replica.NodeID, match func(replica.Message) bool) {
	n.blocks = append(n.blocks, block{from: from, to: to, match: match})
}

// Unblock removes every block.
func (n *Network) Unblock() { n.blocks = nil }

// Len is the number of messages in flight.
func (n *Network) Len() int { return len(n.queue) }
