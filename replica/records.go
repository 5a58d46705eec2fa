package replica

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

// Record types the protocol writes into the log. Neither is a chat event:
// the chat state only advances its applied offset over them.
const (
	// TypeEpochStart is the first record of every epoch: the new primary
	// writes it before accepting writes. Payload: EpochStartEvent.
	TypeEpochStart = "replica.epoch"
	// TypeISR records an ISR change, effective from the offset where it is
	// appended. Payload: ISRChange.
	TypeISR = "replica.isr"
)

// isProtocolRecord reports whether r is one of the core's own records.
func isProtocolRecord(r eventlog.Record) bool {
	return r.Type == TypeEpochStart || r.Type == TypeISR
}

// HardStateKey is the Meta name under which the hard state is stored.
const HardStateKey = "replica.hard"

// HardState is what a node must persist before it acts on it: the epoch it
// adopted, the vote it cast in that epoch, and its restart count.
type HardState struct {
	Epoch eventlog.Epoch `msgpack:"epoch"`
	// Vote is the candidate this node granted in Epoch, or None.
	Vote NodeID `msgpack:"vote"`
	// Incarnation is incremented at every NewNode. It lets a restarted
	// replica tell an ISR record written after it restarted (which makes it
	// an ISR member again) from an older one naming it.
	Incarnation uint64 `msgpack:"inc"`
}

// EncodeHardState returns the Meta value for hs.
func EncodeHardState(hs HardState) ([]byte, error) {
	b, err := msgpack.Marshal(&hs)
	if err != nil {
		return nil, fmt.Errorf("encode hard state: %w", err)
	}
	return b, nil
}

// DecodeHardState parses a value written by EncodeHardState.
func DecodeHardState(b []byte) (HardState, error) {
	var hs HardState
	if err := msgpack.Unmarshal(b, &hs); err != nil {
		return HardState{}, fmt.Errorf("decode hard state: %w", err)
	}
	return hs, nil
}

// EpochStartEvent is the payload of a TypeEpochStart record.
type EpochStartEvent struct {
	Epoch   eventlog.Epoch `msgpack:"epoch"`
	Primary uint32         `msgpack:"primary"`
}

// ISRMember is one member of an ISR: a replica, the incarnation the primary
// saw when it made it a member, and the identity of its data directory then.
type ISRMember struct {
	ID          NodeID `msgpack:"id"`
	Incarnation uint64 `msgpack:"inc"`
	// Disk is the member's data directory identity (Identity.Disk) when it
	// was made a member; 0 in records written before identities existed and
	// in the initial ISR. A replica whose directory has another identity is
	// not this member (its disk was replaced): see Node.isMe.
	Disk uint64 `msgpack:"disk,omitempty"`
}

// ISRChange is the payload of a TypeISR record: the full new ISR, sorted by
// ID.
type ISRChange struct {
	Members []ISRMember `msgpack:"members"`
	// Chained says that PrevAt and PrevEpoch locate the previous ISR record
	// of the log (PrevAt 0: there was none, the initial ISR was in effect).
	// Records written before the chain existed lack it. The chain lets a
	// truncation find the ISR in effect below it without scanning the log.
	Chained   bool            `msgpack:"ch,omitempty"`
	PrevAt    eventlog.Offset `msgpack:"pa,omitempty"`
	PrevEpoch eventlog.Epoch  `msgpack:"pe,omitempty"`
}

// IdentityKey is the Meta name under which the data directory's Identity
// is stored.
const IdentityKey = "replica.identity"

// Identity names a replica's data directory. It is created once, when a
// replica first starts on an empty directory (EnsureIdentity), and never
// changes: a directory that lost its log (wiped, replaced, or reinitialized
// by damage) comes back with a new one. ISR records name members by it, so
// that a replica whose disk was replaced knows that it is a new member: the
// records that named its former self are not about it (DESIGN.md section 3,
// "Identity"; docs/replication.md).
type Identity struct {
	Replica NodeID `msgpack:"replica"`
	// Disk is random and non-zero: 64 bits, so that two directories'
	// identities collide with negligible probability.
	Disk uint64 `msgpack:"disk"`
	// Legacy is set when the identity was created on a directory whose log
	// was written before identities existed: ISR records of that log name
	// members with Disk 0, and those naming this replica are its own.
	Legacy bool `msgpack:"legacy,omitempty"`
}

// String formats the identity as "<replica>-<disk in hex>".
func (id Identity) String() string { return fmt.Sprintf("%s-%016x", id.Replica, id.Disk) }

// EncodeIdentity returns the Meta value for id.
func EncodeIdentity(id Identity) ([]byte, error) {
	b, err := msgpack.Marshal(&id)
	if err != nil {
		return nil, fmt.Errorf("encode identity: %w", err)
	}
	return b, nil
}

// DecodeIdentity parses a value written by EncodeIdentity.
func DecodeIdentity(b []byte) (Identity, error) {
	var id Identity
	if err := msgpack.Unmarshal(b, &id); err != nil {
		return Identity{}, fmt.Errorf("decode identity: %w", err)
	}
	if id.Disk == 0 {
		return Identity{}, errors.New("decode identity: disk id 0")
	}
	return id, nil
}

// ISRBaseKey is the Meta name under which the ISRBase is stored.
const ISRBaseKey = "replica.isr.base"

// ISRBase is the ISR record in effect at the log's compaction point, kept
// in the log's meta when compaction removes the records below it (the ISR
// record itself may be among them): NewNode and truncations find the ISR in
// effect through the chain of ISR records, and a chain that reaches below
// the first retained record ends here. It is also what a snapshot carries,
// for the replica that installs it.
type ISRBase struct {
	// At and Epoch locate the record (At 0: the initial ISR).
	At     eventlog.Offset `msgpack:"at"`
	Epoch  eventlog.Epoch  `msgpack:"e"`
	Change ISRChange       `msgpack:"c"`
}

// EncodeISRBase returns the Meta value for b.
func EncodeISRBase(b ISRBase) ([]byte, error) {
	v, err := msgpack.Marshal(&b)
	if err != nil {
		return nil, fmt.Errorf("encode isr base: %w", err)
	}
	return v, nil
}

// DecodeISRBase parses a value written by EncodeISRBase.
func DecodeISRBase(b []byte) (ISRBase, error) {
	var v ISRBase
	if err := msgpack.Unmarshal(b, &v); err != nil {
		return ISRBase{}, fmt.Errorf("decode isr base: %w", err)
	}
	return v, nil
}

func (b ISRBase) view() isrView {
	return isrView{members: b.Change.Members, epoch: b.Epoch, at: b.At,
		chained: b.Change.Chained, prevAt: b.Change.PrevAt, prevEpoch: b.Change.PrevEpoch}
}

func (v isrView) base() ISRBase {
	return ISRBase{At: v.at, Epoch: v.epoch, Change: ISRChange{Members: v.members, Chained: v.chained,
		PrevAt: v.prevAt, PrevEpoch: v.prevEpoch}}
}

// ISRIndexKey is the Meta name under which the ISRIndex is stored.
const ISRIndexKey = "replica.isr"

// ISRIndex locates the latest ISR record of the log, so that a restart finds
// the ISR in effect without scanning the log back (start-up time must not
// depend on the log's length). At is 0 when the log holds no ISR record.
// Prev locates the ISR record before it: the fallback when a crash
// interrupted the Ready that was appending the record at At (the index is
// written before that Append, and after a Truncate; see Ready.ISRIndex).
type ISRIndex struct {
	At    eventlog.Offset `msgpack:"at"`
	Epoch eventlog.Epoch  `msgpack:"e"`
	// Chained says Prev is known (the record at At is chained).
	Chained   bool            `msgpack:"ch"`
	PrevAt    eventlog.Offset `msgpack:"pa"`
	PrevEpoch eventlog.Epoch  `msgpack:"pe"`
}

// EncodeISRIndex returns the Meta value for x.
func EncodeISRIndex(x ISRIndex) ([]byte, error) {
	b, err := msgpack.Marshal(&x)
	if err != nil {
		return nil, fmt.Errorf("encode isr index: %w", err)
	}
	return b, nil
}

// DecodeISRIndex parses a value written by EncodeISRIndex.
func DecodeISRIndex(b []byte) (ISRIndex, error) {
	var x ISRIndex
	if err := msgpack.Unmarshal(b, &x); err != nil {
		return ISRIndex{}, fmt.Errorf("decode isr index: %w", err)
	}
	return x, nil
}

// DecodeISRChange parses a TypeISR record's payload.
func DecodeISRChange(b []byte) (ISRChange, error) {
	var c ISRChange
	if err := msgpack.Unmarshal(b, &c); err != nil {
		return ISRChange{}, fmt.Errorf("decode isr change: %w", err)
	}
	return c, nil
}

func mustMarshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		// Only fixed protocol structs are marshalled here.
		panic(fmt.Sprintf("replica: marshal %T: %v", v, err))
	}
	return b
}

// isrView is an ISR and where it was recorded.
type isrView struct {
	members []ISRMember
	// epoch and at locate the ISR record; at == 0 is the initial ISR (every
	// peer, incarnation 0), which precedes every record.
	epoch eventlog.Epoch
	at    eventlog.Offset
	// chained: prevAt and prevEpoch locate the ISR record before this one
	// (see ISRChange.Chained). Only for views of the log's own records.
	chained   bool
	prevAt    eventlog.Offset
	prevEpoch eventlog.Epoch
}

// isrFromRecord returns the view of an ISR record.
func isrFromRecord(r eventlog.Record) (isrView, error) {
	c, err := DecodeISRChange(r.Data)
	if err != nil {
		return isrView{}, fmt.Errorf("isr record %d: %w", r.Offset, err)
	}
	return isrView{members: c.Members, epoch: r.Epoch, at: r.Offset,
		chained: c.Chained, prevAt: c.PrevAt, prevEpoch: c.PrevEpoch}, nil
}

// index returns the ISRIndex that locates v.
func (v isrView) index() ISRIndex {
	return ISRIndex{At: v.at, Epoch: v.epoch, Chained: v.chained, PrevAt: v.prevAt, PrevEpoch: v.prevEpoch}
}

// newer reports whether v was recorded after o.
func (v isrView) newer(o isrView) bool {
	if v.epoch != o.epoch {
		return v.epoch > o.epoch
	}
	return v.at > o.at
}

func (v isrView) contains(id NodeID) bool {
	return slices.ContainsFunc(v.members, func(m ISRMember) bool { return m.ID == id })
}

func (v isrView) member(id NodeID) (ISRMember, bool) {
	for _, m := range v.members {
		if m.ID == id {
			return m, true
		}
	}
	return ISRMember{}, false
}

func (v isrView) ids() []NodeID {
	ids := make([]NodeID, len(v.members))
	for i, m := range v.members {
		ids[i] = m.ID
	}
	return ids
}

func sameMembers(a, b []ISRMember) bool { return slices.Equal(a, b) }
