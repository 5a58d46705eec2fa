package replica

import (
	"github.com/replichat/replichat/eventlog"
)

// maybeResubmit re-submits the head of the rollback area: records a
// divergence truncated. Those carrying a client id go to the primary (or are
// proposed here, on the primary) with their original client id, sequence,
// type, data and time; deduplication at apply time drops the ones that had
// landed anyway. Once the primary's copies are committed, the entries are
// discarded.
func (n *Node) maybeResubmit() {
	if n.stopped != nil || n.readyOut {
		return
	}
	rb := &n.rb
	if rb.inflight && rb.known {
		if n.commit < rb.upto {
			return
		}
		if rb.upto > 0 && (rb.upto > n.lv.last || n.lv.epochAt(rb.upto) != rb.uptoEpoch) {
			// The primary's copies were lost in a failover: send again.
			rb.inflight = false
		} else {
			n.discardQueued += rb.count
			*rb = resubmission{pending: true}
			return // the discard must be persisted before reading again
		}
	}
	if !rb.pending || rb.inflight || n.truncPending || n.discardQueued > 0 {
		return
	}
	if n.role != RolePrimary && (n.primary == None || !n.matched) {
		return
	}
	recs, err := n.lv.log.RolledBack(n.cfg.MaxResubmit)
	if err != nil {
		n.stop(err)
		return
	}
	if len(recs) == 0 {
		rb.pending = false
		return
	}
	client := clientRecords(recs)
	if n.role == RolePrimary {
		if len(client) == 0 {
			n.discardQueued += len(recs)
			return
		}
		if int(n.lv.last-n.commit)+len(client) > n.cfg.MaxUncommitted {
			return // backpressure: retry on a later tick
		}
		last := n.propose(client)
		n.logger.Info("re-proposing rolled-back records", "count", len(client), "upto", last)
		*rb = resubmission{pending: true, inflight: true, known: true, count: len(recs), upto: last, uptoEpoch: n.epoch}
		return
	}
	m := n.msg(MsgResubmit, n.primary)
	m.Records, m.Count = client, len(recs)
	n.send(m)
	*rb = resubmission{pending: true, inflight: true, count: len(recs)}
}

// clientRecords returns copies of the records that a client caused, marked
// as re-submissions of the truncated copy (OrigEpoch, OrigOffset; a record
// truncated again keeps its first origin), their offset and epoch cleared
// (the primary assigns new ones).
func clientRecords(recs []eventlog.Record) []eventlog.Record {
	var out []eventlog.Record
	for _, r := range recs {
		if r.ClientID == "" {
			continue
		}
		if !r.Resubmitted() {
			r.OrigEpoch, r.OrigOffset = r.Epoch, r.Offset
		}
		r.Offset, r.Epoch = 0, 0
		out = append(out, r)
	}
	return out
}

// handleResubmit (primary): propose a backup's rolled-back client records.
func (n *Node) handleResubmit(m Message) {
	if n.role != RolePrimary {
		return
	}
	r := n.msg(MsgResubmitResp, m.From)
	r.Count = m.Count
	if len(m.Records) > 0 {
		if int(n.lv.last-n.commit)+len(m.Records) > n.cfg.MaxUncommitted {
			return // the backup will retry
		}
		r.LastOffset = n.propose(clientRecords(m.Records))
		r.LastEpoch = n.epoch
		n.logger.Info("re-proposing a backup's rolled-back records", "from", m.From, "count", len(m.Records), "upto", r.LastOffset)
	} else {
		r.LastOffset, r.LastEpoch = 0, 0
	}
	n.send(r)
}
