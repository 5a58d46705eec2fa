package server

import (
	"io"

	"github.com/replichat/replichat/eventlog"
)

// Snapshots (the replication shell's Snapshotter capability): the shell
// writes one every so many applied records, from a read view while applying
// goes on, and compacts the log behind it; a backup whose next record the
// primary no longer holds installs the primary's (RestoreSnapshot), then
// catches up by offset.
//
// What the server keeps in memory beside the state must stay right across
// an install, which replaces the state under it:
//   - the seqTracker's bounds could be too low for the restored state (its
//     requests were never applied here): it is cleared and relearned, so
//     that a retry of a request the snapshot covers is answered from the
//     dedup table that came with the snapshot, never decided again;
//   - sessions (logged-in users, listening pushers and their cursors into
//     unread queues) refer to the replaced state: their connections are
//     closed, and the clients log in and listen again against the
//     restored one (a replica installs only as a backup, which serves no
//     sessions anyway);
//   - requests waiting for their records to apply are failed by the shell
//     (outcome unknown: retried with the same sequence);
//   - chat.State resets its own caches (RestoreSnapshot).

// WriteSnapshot writes the chat state, consistent at one applied offset,
// which it returns (shell.Snapshotter). It runs concurrently with Apply.
func (m *StateMachine) WriteSnapshot(w io.Writer) (eventlog.Offset, error) {
	return m.state.WriteSnapshot(w)
}

// RestoreSnapshot replaces the chat state with a snapshot WriteSnapshot
// wrote and returns the offset it covers, once that is durable (SetSync).
// The server's caches follow (see above), and what the replaced state held
// is purged from the disk once the log is past it (purge.go). It must not
// run concurrently with Apply.
func (m *StateMachine) RestoreSnapshot(r io.Reader) (eventlog.Offset, error) {
	m.mu.Lock()
	err := m.state.RestoreSnapshot(r)
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	off := m.state.Applied()
	if m.srv != nil {
		m.srv.stateReplaced()
	}
	m.purge.note(off)
	if err := m.synced("restore"); err != nil {
		return 0, err
	}
	return off, nil
}

// stateReplaced makes the server's caches follow a state replaced under it
// (an installed snapshot): see the top of this file.
func (s *Server) stateReplaced() {
	s.seqs.reset()
	s.mu.Lock()
	n := len(s.clients)
	for c := range s.clients {
		c.Close()
	}
	s.mu.Unlock()
	if n > 0 {
		s.logger.Info("the chat state was replaced by a snapshot; closing client connections", "clients", n)
	}
}
