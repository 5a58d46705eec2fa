package replicatest

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/replichat/replichat/eventlog"
)

// ClientSeq identifies a client request.
type ClientSeq struct {
	Client string
	Seq    uint64
}

// StateMachine is the simulator's tiny application: it applies committed
// client records once each (deduplicating by client and sequence, as chat
// does), skips protocol records, and folds what it applied into a digest.
type StateMachine struct {
	// Applied is the offset of the last record applied.
	Applied eventlog.Offset
	// Seen holds every (client, seq) applied.
	Seen map[ClientSeq]bool
	// LastSeq is the highest sequence applied per client.
	LastSeq map[string]uint64
	Digest  uint64
	// Gaps counts client records applied with a sequence other than
	// LastSeq+1 (per-client order, invariant 8).
	Gaps int
}

// NewStateMachine returns an empty state machine.
func NewStateMachine() *StateMachine {
	return &StateMachine{Seen: map[ClientSeq]bool{}, LastSeq: map[string]uint64{}, Digest: 14695981039346656037}
}

// Apply applies the record at Applied+1. It reports whether the record was
// a new client request (not a duplicate, not a protocol record).
func (s *StateMachine) Apply(r eventlog.Record) (applied bool, err error) {
	if r.Offset != s.Applied+1 {
		return false, fmt.Errorf("apply offset %d after %d", r.Offset, s.Applied)
	}
	s.Applied = r.Offset
	if strings.HasPrefix(r.Type, "replica.") || r.ClientID == "" {
		return false, nil
	}
	k := ClientSeq{r.ClientID, r.Seq}
	if s.Seen[k] {
		return false, nil
	}
	s.Seen[k] = true
	if r.Seq != s.LastSeq[r.ClientID]+1 {
		s.Gaps++
	}
	s.LastSeq[r.ClientID] = max(s.LastSeq[r.ClientID], r.Seq)
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%d|%s|%s", s.Digest, r.ClientID, r.Seq, r.Type, r.Data)
	s.Digest = h.Sum64()
	return true, nil
}
