package server

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// StateMachine is what the replication runtime applies committed records to:
// the chat state, plus the wake-ups that make pushes follow what is applied.
// It is the only writer of the chat state.
type StateMachine struct {
	state *chat.State
	// srv's pushers are woken after each applied batch for the users whose
	// unread queue changed; nil until a Server is attached.
	srv *Server
}

// NewStateMachine returns the state machine over state. Attach the server
// with SetServer once it exists (the server needs the replicator, which
// needs the state machine).
func NewStateMachine(state *chat.State) *StateMachine {
	return &StateMachine{state: state}
}

// SetServer makes applied sends and deliveries wake srv's pushers. Call it
// before the replicator applies anything concurrently.
func (m *StateMachine) SetServer(srv *Server) {
	m.srv = srv
	srv.seqs.enable()
}

// Apply applies committed records in offset order.
func (m *StateMachine) Apply(recs []eventlog.Record) error {
	if m.srv == nil {
		return m.state.Apply(recs)
	}
	results, err := m.state.ApplyWithResults(recs)
	// Even after an error: part of recs may have been applied.
	m.srv.seqs.note(recs)
	m.srv.results.deliver(results)
	if err != nil {
		return err
	}
	m.wake(recs)
	return nil
}

// Applied is the offset of the last applied record.
func (m *StateMachine) Applied() (eventlog.Offset, error) { return m.state.Applied(), nil }

// Reset empties the chat state (Applied becomes 0) so that the log can be
// replayed into it: replication needs this when a fork forces it to truncate
// records the state already applied. It restores the snapshot of an empty
// state, which is crash-safe: an interrupted reset leaves a marker that makes
// the state refuse to serve until a reset completes.
func (m *StateMachine) Reset() error {
	var empty bytes.Buffer
	if err := chat.NewState(chat.NewMemStore()).WriteSnapshot(&empty); err != nil {
		return fmt.Errorf("snapshot an empty state: %w", err)
	}
	if err := m.state.RestoreSnapshot(&empty); err != nil {
		return fmt.Errorf("reset chat state: %w", err)
	}
	return nil
}

// wake nudges the pushers of every user whose unread queue grew (a send to
// them) or shrank (a delivery, which frees their push window).
func (m *StateMachine) wake(recs []eventlog.Record) {
	if !m.srv.anyListening() {
		// Nobody to wake (always so on a backup): skip decoding the events.
		// A session that starts listening later reads its queue first.
		return
	}
	var uids []uint64
	for _, r := range recs {
		if !strings.HasPrefix(r.Type, chat.TypePrefix) {
			continue
		}
		ev, err := chat.DecodeEvent(r.Type, r.Data)
		if err != nil {
			continue // Apply accepted it, so this cannot happen; pushes are best effort anyway
		}
		switch ev := ev.(type) {
		case *chat.SendEvent:
			uids = append(uids, ev.ToUID)
		case *chat.DeliverEvent:
			uids = append(uids, ev.UID)
		}
	}
	for _, uid := range uids {
		m.srv.wake(uid)
	}
}
