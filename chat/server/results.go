package server

import (
	"sync"

	"github.com/replichat/replichat/chat"
)

// resultWaiters hands the results the state machine stores to the requests
// waiting for them, so that a request does not read back from the state the
// result its own apply just wrote (a transaction, two reads and a decode on
// every mutating request).
//
// A request registers before proposing and reads its slot once Propose has
// returned (which it does only after the records are applied). An empty
// slot (its record was skipped as a duplicate, or applied by no state
// machine attached to this server) means: look the result up, as before.
type resultWaiters struct {
	mu sync.Mutex
	// slots maps a request to the one waiting for it; a second request
	// with the same (client id, seq) waits for nothing and looks up.
	slots map[resultKey]*resultSlot
}

type resultKey struct {
	client string
	seq    uint64
}

type resultSlot struct {
	res chat.Result
	ok  bool
}

// add registers a wait for (client, seq); nil if another request waits
// for it already.
func (w *resultWaiters) add(client string, seq uint64) *resultSlot {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := resultKey{client, seq}
	if _, busy := w.slots[k]; busy {
		return nil
	}
	if w.slots == nil {
		w.slots = make(map[resultKey]*resultSlot)
	}
	slot := &resultSlot{}
	w.slots[k] = slot
	return slot
}

// take removes slot (from add; nil is allowed) and returns what it
// received, ok false if nothing.
func (w *resultWaiters) take(client string, seq uint64, slot *resultSlot) (chat.Result, bool) {
	if slot == nil {
		return chat.Result{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.slots, resultKey{client, seq})
	return slot.res, slot.ok
}

// deliver fills the slots of the requests among results.
func (w *resultWaiters) deliver(results []chat.AppliedResult) {
	if len(results) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range results {
		if slot := w.slots[resultKey{r.ClientID, r.Seq}]; slot != nil {
			slot.res, slot.ok = r.Result, true
		}
	}
}
