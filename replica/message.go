package replica

import (
	"fmt"
	"strconv"

	"github.com/replichat/replichat/eventlog"
)

// MsgType says what a Message is for.
type MsgType uint8

// Message types. Every message carries the sender's Epoch and log position.
const (
	// MsgHeartbeat goes from every node to every other one each
	// HeartbeatTicks: "I am alive", with the sender's role, log position and
	// ISR knowledge. From a primary it also carries Commit. Silence of
	// FailoverTicks is how a crash is detected.
	MsgHeartbeat MsgType = iota + 1
	// MsgAppend (primary -> backup) carries Records following offset Prev,
	// whose record has epoch PrevEpoch, and the primary's Commit.
	MsgAppend
	// MsgAppendResp (backup -> primary) acknowledges that the backup's log
	// durably holds everything up to LastOffset, which matches the primary's.
	// Reject means Prev did not match; LastOffset is then the backup's end.
	MsgAppendResp
	// MsgFetch (backup -> primary) asks for records after the backup's
	// (LastOffset, LastEpoch): the catch-up request.
	MsgFetch
	// MsgFetchResp (primary -> backup) answers a fetch. Without Reject, the
	// backup's log matches the primary's up to LastOffset. With Reject, the
	// logs diverge: the primary's history with epochs <= the backup's last
	// epoch ends at (LastEpoch, LastOffset), and the backup truncates there.
	MsgFetchResp
	// MsgVote (candidate -> all) asks for a vote in Epoch.
	MsgVote
	// MsgVoteResp answers MsgVote; Reject is a refusal, Fresher says the
	// responder's log is fresher and it may lead itself.
	MsgVoteResp
	// MsgOut (primary -> backup) tells a live but lagging ISR member that it
	// is being removed from the ISR. The removal record only follows the
	// member's MsgOutAck, so that it cannot later believe itself in the ISR.
	// At is the primary's log end when it decided.
	MsgOut
	// MsgOutAck acknowledges MsgOut.
	MsgOutAck
	// MsgResubmit (backup -> primary) carries rolled-back client records for
	// the primary to propose again; Count is how many rollback-area entries
	// (client records or not) this covers.
	MsgResubmit
	// MsgResubmitResp (primary -> backup) says the records of a MsgResubmit
	// were proposed up to LastOffset; once that is committed the backup
	// discards Count entries from its rollback area.
	MsgResubmitResp
	// MsgSnapshot is reserved for a backup that needs records the primary
	// has compacted. Not implemented yet: compaction is not used.
	MsgSnapshot
)

// String returns the type's short name.
func (t MsgType) String() string {
	switch t {
	case MsgHeartbeat:
		return "heartbeat"
	case MsgAppend:
		return "append"
	case MsgAppendResp:
		return "append-resp"
	case MsgFetch:
		return "fetch"
	case MsgFetchResp:
		return "fetch-resp"
	case MsgVote:
		return "vote"
	case MsgVoteResp:
		return "vote-resp"
	case MsgOut:
		return "out"
	case MsgOutAck:
		return "out-ack"
	case MsgResubmit:
		return "resubmit"
	case MsgResubmitResp:
		return "resubmit-resp"
	case MsgSnapshot:
		return "snapshot"
	}
	return "msg(" + strconv.Itoa(int(t)) + ")"
}

// Message is the one value nodes exchange. Fields not used by a Type are
// zero. The msgpack names are the wire format between replicas; the codec
// that writes it is hand-written (messagecodec.go) and must keep to them.
type Message struct {
	Type MsgType `msgpack:"t"`
	From NodeID  `msgpack:"f"`
	To   NodeID  `msgpack:"to"`
	// Epoch is the sender's current epoch: the fence. A receiver with a
	// higher epoch rejects the message and tells the sender, which adopts
	// it (and steps down if it was primary).
	Epoch eventlog.Epoch `msgpack:"e"`
	// Role is the sender's role; Primary the primary it follows (None if
	// none).
	Role    Role   `msgpack:"r"`
	Primary NodeID `msgpack:"p"`
	// LastOffset and LastEpoch are the sender's log position, except where a
	// type documents another meaning.
	LastOffset eventlog.Offset `msgpack:"lo"`
	LastEpoch  eventlog.Epoch  `msgpack:"le"`
	// Commit is the primary's commit offset (primary messages only).
	Commit eventlog.Offset `msgpack:"c,omitempty"`
	// Prev and PrevEpoch locate the record before Records (MsgAppend).
	Prev      eventlog.Offset   `msgpack:"pv,omitempty"`
	PrevEpoch eventlog.Epoch    `msgpack:"pe,omitempty"`
	Records   []eventlog.Record `msgpack:"rs,omitempty"`
	Reject    bool              `msgpack:"x,omitempty"`
	// Probe, on a primary's heartbeat, says the primary does not know
	// where the backup's log stands: the backup must send MsgFetch.
	Probe   bool `msgpack:"pr,omitempty"`
	Fresher bool `msgpack:"fr,omitempty"`
	// ISR is the newest ISR the sender knows, recorded in epoch ISREpoch at
	// offset ISRAt (0: the initial ISR, every peer).
	ISR      []ISRMember     `msgpack:"i,omitempty"`
	ISREpoch eventlog.Epoch  `msgpack:"ie,omitempty"`
	ISRAt    eventlog.Offset `msgpack:"ia,omitempty"`
	// Recovering is true while the sender restarted and has not yet heard
	// from its ISR; Eligible while it may run for primary.
	Recovering bool `msgpack:"rc,omitempty"`
	Eligible   bool `msgpack:"el,omitempty"`
	// Incarnation counts the sender's restarts (persisted).
	Incarnation uint64 `msgpack:"in"`
	// SeenIncarnation is the receiver's incarnation as the sender last
	// heard it: a recovering receiver counts a report only if it was sent
	// after the sender heard from its current incarnation (not a stale
	// message buffered across a restart or pause).
	SeenIncarnation uint64 `msgpack:"si,omitempty"`
	// At is the primary's log end when it sent MsgOut.
	At eventlog.Offset `msgpack:"at,omitempty"`
	// Count is the number of rollback-area entries a resubmission covers.
	Count int `msgpack:"n,omitempty"`
	// Disk is the sender's data directory identity (Identity.Disk), so that
	// a primary records members by it and notices a replaced disk.
	Disk uint64 `msgpack:"dk,omitempty"`
	// Stamp is the sender's clock (its tick count in this life) when it
	// built the message. Echo is the latest Stamp the sender received from
	// the receiver while the receiver was its primary in the sender's
	// current epoch: a primary learns from it that the sender reset its
	// failover timer no earlier than that tick, which is what its read
	// lease rests on (Node.lease).
	Stamp uint64 `msgpack:"sp,omitempty"`
	Echo  uint64 `msgpack:"ec,omitempty"`
	// Stable (primary messages) is an offset durable on every replica of
	// the cluster: no truncation can ever reach it (Ready.Stable).
	Stable eventlog.Offset `msgpack:"st,omitempty"`
	// DiskFull says the sender's disk is nearly full (Node.SetDiskFull): it
	// takes no records, so a primary removes it from the ISR at once rather
	// than wait for it to lag, and hands its own role to a backup that can
	// still write.
	DiskFull bool `msgpack:"df,omitempty"`
}

// String summarizes the message for traces.
func (m Message) String() string {
	s := fmt.Sprintf("%s %s->%s e%d %s last=%d/e%d", m.Type, m.From, m.To, m.Epoch, m.Role, m.LastOffset, m.LastEpoch)
	switch m.Type {
	case MsgAppend:
		s += fmt.Sprintf(" prev=%d/e%d n=%d commit=%d", m.Prev, m.PrevEpoch, len(m.Records), m.Commit)
	case MsgHeartbeat:
		s += fmt.Sprintf(" commit=%d isr=%v@%d", m.Commit, m.ISR, m.ISRAt)
	case MsgResubmit, MsgResubmitResp:
		s += fmt.Sprintf(" n=%d recs=%d", m.Count, len(m.Records))
	case MsgOut:
		s += fmt.Sprintf(" at=%d", m.At)
	}
	if m.Reject {
		s += " reject"
	}
	if m.Fresher {
		s += " fresher"
	}
	return s
}
