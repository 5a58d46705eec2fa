package server

import (
	"strings"
	"sync"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// maxTrackedClients bounds the clients a seqTracker remembers; past it the
// tracker starts over (a forgotten client costs one state scan to relearn).
const maxTrackedClients = 1 << 16

// seqTracker knows, for the clients it has learned, a bound on the seqs of
// their applied requests, so that a request above it is known to be new
// without reading the dedup table: nearly every request is new, and that
// read (a miss, the dearest kind in Badger) was a tenth of a send's cost on
// the request path.
//
// Invariant: for every client in max, every applied request of that client
// (one State.Result reports) has seq <= max[client]. A value may be too high
// (after a state reset), which only costs a lookup; it is never too low:
//   - learn reads the bound from the state while holding mu;
//   - the state machine raises the bounds after every apply (note), also
//     under mu. A record committed after learn's read began is noted only
//     after learn released mu, so note sees the learned entry and raises it.
//
// It is only enabled once the server's StateMachine reports applies to it
// (SetServer); until then every request is looked up.
type seqTracker struct {
	mu      sync.Mutex
	enabled bool
	max     map[string]uint64
}

// fresh reports whether (client, seq) is known never to have been applied,
// learning the client's bound from state if it is not known yet. false
// means "look it up", never "it was applied".
func (t *seqTracker) fresh(state *chat.State, client string, seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.enabled {
		return false
	}
	bound, ok := t.max[client]
	if !ok {
		var err error
		if bound, err = state.MaxSeq(client); err != nil {
			return false // the lookup that follows reports the storage error
		}
		if len(t.max) >= maxTrackedClients {
			clear(t.max)
		}
		t.max[client] = bound
	}
	return seq > bound
}

// note raises the bounds of learned clients to the seqs of recs, which the
// state has applied (or tried to: a failed apply may have committed a
// prefix, and a bound too high is harmless).
func (t *seqTracker) note(recs []eventlog.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range recs {
		if r.ClientID == "" || !strings.HasPrefix(r.Type, chat.TypePrefix) {
			continue
		}
		if bound, ok := t.max[r.ClientID]; ok && r.Seq > bound {
			t.max[r.ClientID] = r.Seq
		}
	}
}

// enable starts tracking.
func (t *seqTracker) enable() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.enabled = true
	if t.max == nil {
		t.max = make(map[string]uint64)
	}
}

// reset forgets every learned bound: the state was replaced by one whose
// bounds may be higher (an installed snapshot).
func (t *seqTracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.max)
}
