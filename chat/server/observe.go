package server

import (
	"sync/atomic"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// What a metrics endpoint reads from the server. The server knows nothing
// of the metrics library: it calls Config.ObserveRequest as requests are
// answered and exposes counts that the endpoint reads when it is scraped.

// CodeOK is the code ObserveRequest gets for a request answered with
// success (wire has no code for it: a success carries no error).
const CodeOK wire.Code = "ok"

// OpUnknown is the op ObserveRequest gets for a request whose op is not
// one of this protocol version's (answered unknown_op): client-chosen op
// names would make an unbounded set of metric labels.
const OpUnknown = "unknown"

// observeRequest hands an answered request to Config.ObserveRequest: its op
// (OpUnknown if not a known one), its code (CodeOK on success) and how long
// it took to answer, encoding included, writing the response not.
func (s *Server) observeRequest(resp wire.Frame, took time.Duration) {
	if s.cfg.ObserveRequest == nil {
		return
	}
	op, code := resp.Op, CodeOK
	if !wire.KnownOp(op) {
		op = OpUnknown
	}
	if resp.Error != nil {
		code = resp.Error.Code
	}
	s.cfg.ObserveRequest(op, code, took)
}

// Sessions counts the server's client sessions at one instant.
type Sessions struct {
	// Clients is the open client connections (replica peer links not
	// included), from their first byte to their close.
	Clients int
	// Listening is the sessions that are listening (pushing messages to
	// their user as they arrive).
	Listening int
}

// Sessions returns the current counts; safe to call at any time.
func (s *Server) Sessions() Sessions {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Sessions{Clients: len(s.clients)}
	for _, set := range s.listening {
		out.Listening += len(set)
	}
	return out
}

// RollbackCounts counts the rollbacks of the chat state after the log was
// truncated below what it had applied (a fork after a failover).
type RollbackCounts struct {
	// Undone is the rollbacks done by the state's undo history
	// (RollbackTo).
	Undone uint64
	// Reset is the resets of the state to empty, to be replayed from the
	// log (Reset): where the undo history did not reach back far enough,
	// and at start-up to finish an interrupted reset.
	Reset uint64
}

type rollbackCounters struct {
	undone, reset atomic.Uint64
}

// Rollbacks returns the counts of state rollbacks that succeeded since the
// state machine was created, for a metrics endpoint.
func (m *StateMachine) Rollbacks() RollbackCounts {
	return RollbackCounts{Undone: m.rollbacks.undone.Load(), Reset: m.rollbacks.reset.Load()}
}
