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

// App is the application the simulated replicas run: what a client request
// writes, decided on the node that takes it (as a chat server decides a
// command against its state), and the state machine that applies it. The
// default is Counter, a deterministic toy; chat's tests plug in the real
// chat state so that its deduplication, ids and rollback run under the same
// faults.
type App interface {
	// Request returns the record (Type and Data; the cluster sets ClientID,
	// Seq and Time) of client's request seq, decided against st, the state
	// of the node taking it. An error is a definite refusal: nothing is
	// proposed. The client retries it, unless it wraps ErrFinal.
	Request(st AppState, client string, seq uint64) (typ string, data []byte, err error)
	// NewState returns an empty state: a node's at start, after a crash
	// (the state is rebuilt by replaying the log) or after a fork that its
	// state cannot roll back.
	NewState() AppState
}

// AppState is one node's application state.
type AppState interface {
	// Apply applies the record at Applied()+1. fresh reports whether it
	// applied a client request for the first time (not a duplicate, not a
	// protocol record).
	Apply(r eventlog.Record) (fresh bool, err error)
	// Applied is the offset of the last record applied.
	Applied() eventlog.Offset
	// Digest summarizes the state: equal on replicas that applied the same
	// records.
	Digest() uint64
	// Result is what the state says of a client request: ok false if it
	// was never applied, else what the client is told (for a chat send, the
	// message id). The simulator checks that a request's final result on
	// every replica is what its client was told (DESIGN.md invariant 1:
	// present, under its acknowledged id).
	Result(client string, seq uint64) (result string, ok bool)
}

// Rollbacker is an optional capability of an AppState: undoing the records
// applied after an offset (shell.Rollbacker). Without it, a fork rebuilds
// the state from the log.
type Rollbacker interface {
	RollbackTo(after eventlog.Offset) (eventlog.Offset, error)
	SetStable(off eventlog.Offset)
}

// Reevaluator is an optional capability of an AppState: telling that its
// result for a request differs from the one its client was told because
// the request was re-submitted after a fork and applied again, against the
// winning side's state, with another outcome. That is the one way an
// acknowledged result may change when a fork heals (DESIGN.md, divergence:
// a re-submitted record "is applied, or rejected with a visible reason"):
// rejected for a domain reason the state makes visible to its client and
// operators (chat: a send whose recipient was deleted on the winning side;
// a warning and the re-submission counters), or applied where the losing
// side had rejected it. CheckFinal accepts such a request's different
// result, traces it and counts it (Stats.Reevaluated); any other
// difference fails the run.
type Reevaluator interface {
	// Reevaluated reports why the state's result for request (client, seq)
	// is not told, the result its client was told; ok false if that is not
	// the outcome of a re-submission applied again.
	Reevaluated(client string, seq uint64, told string) (why string, ok bool)
}

// Counter is the default App: each request writes "client-seq"; the state
// applies a request once per (client, seq), remembering every one (an exact
// deduplication, unlike chat's bounded window), and folds what it applied
// into a digest. Its result for a request is the data it wrote.
type Counter struct{}

// Request implements App.
func (Counter) Request(_ AppState, client string, seq uint64) (string, []byte, error) {
	return "test.put", []byte(fmt.Sprintf("%s-%d", client, seq)), nil
}

// NewState implements App.
func (Counter) NewState() AppState { return NewStateMachine() }

// StateMachine is Counter's state.
type StateMachine struct {
	applied eventlog.Offset
	// Seen holds every (client, seq) applied, with its data.
	Seen   map[ClientSeq]string
	digest uint64
}

// NewStateMachine returns an empty state machine.
func NewStateMachine() *StateMachine {
	return &StateMachine{Seen: map[ClientSeq]string{}, digest: 14695981039346656037}
}

// Applied implements AppState.
func (s *StateMachine) Applied() eventlog.Offset { return s.applied }

// Digest implements AppState.
func (s *StateMachine) Digest() uint64 { return s.digest }

// Result implements AppState: the data the request wrote.
func (s *StateMachine) Result(client string, seq uint64) (string, bool) {
	d, ok := s.Seen[ClientSeq{client, seq}]
	return d, ok
}

// Apply implements AppState.
func (s *StateMachine) Apply(r eventlog.Record) (applied bool, err error) {
	if r.Offset != s.applied+1 {
		return false, fmt.Errorf("apply offset %d after %d", r.Offset, s.applied)
	}
	s.applied = r.Offset
	if strings.HasPrefix(r.Type, "replica.") || r.ClientID == "" {
		return false, nil
	}
	k := ClientSeq{r.ClientID, r.Seq}
	if _, ok := s.Seen[k]; ok {
		return false, nil
	}
	s.Seen[k] = string(r.Data)
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%d|%s|%s", s.digest, r.ClientID, r.Seq, r.Type, r.Data)
	s.digest = h.Sum64()
	return true, nil
}
