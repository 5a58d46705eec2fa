package chat_test

// Goal: Apply keeps the values every request reads (counters, user and
// client records) across transactions instead of reading them from the
// store each time, and that never makes it apply on stale values: not
// after a transaction whose commit failed, not after a restart or restore.

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// readLogStore records the keys each Update reads from the store.
type readLogStore struct {
	chat.Store
	reads []string
	// commitErr, if set, is returned by the next Update after it has
	// committed: a commit that happened but reported a failure.
	commitErr error
}

func (s *readLogStore) Update(fn func(chat.KV) error) error {
	s.reads = nil
	err := s.Store.Update(func(kv chat.KV) error { return fn(&readLogKV{KV: kv, s: s}) })
	if err == nil && s.commitErr != nil {
		err, s.commitErr = s.commitErr, nil
	}
	return err
}

type readLogKV struct {
	chat.KV
	s *readLogStore
}

func (kv *readLogKV) Get(k []byte) ([]byte, bool, error) {
	kv.s.reads = append(kv.s.reads, string(k))
	return kv.KV.Get(k)
}

func TestState_Apply_ReadsOnlyWhatItDoesNotKnow(t *testing.T) {
	store := &readLogStore{Store: chat.NewMemStore()}
	h := newHarness(t, store)
	ann := h.register("ann")
	require.NoError(t, h.st.Apply([]eventlog.Record{sendRec(h, ann, "bot", 1)}))

	next := sendRec(h, ann, "bot", 2)
	require.NoError(t, h.st.Apply([]eventlog.Record{next}))
	assert.Len(t, store.reads, 1, "only the new message's key, to check its id is unused: %q", store.reads)

	// A restart forgets it all, and reads the store again.
	st := chat.NewState(store)
	require.NoError(t, st.Apply([]eventlog.Record{sendRec(h, ann, "bot", 3)}))
	assert.Greater(t, len(store.reads), 5, "%q", store.reads)
	require.NoError(t, st.Check())
}

func TestState_Apply_AfterAFailedCommit(t *testing.T) {
	boom := errors.New("commit reported lost")
	store := &readLogStore{Store: chat.NewMemStore()}
	h := newHarness(t, store)
	ann := h.register("ann")
	require.NoError(t, h.st.Apply([]eventlog.Record{sendRec(h, ann, "bot", 1)}))

	// The commit of seq 2 happened, but Apply was told it failed: Applied
	// stays behind the store's, and what Apply knew may be stale.
	store.commitErr = boom
	recs := []eventlog.Record{sendRec(h, ann, "bot", 2), sendRec(h, ann, "bot", 3)}
	require.ErrorIs(t, h.st.Apply(recs[:1]), boom)
	require.NoError(t, h.st.Apply(recs), "the store's applied offset says to skip seq 2")
	assert.Equal(t, 3, countMessages(t, h.st, ann))

	// A new State over the same store has the same view of it.
	fresh := chat.NewState(store)
	assert.Equal(t, h.st.Applied(), fresh.Applied())
	require.NoError(t, fresh.Check())
	want := chat.NewState(chat.NewMemStore())
	require.NoError(t, want.Apply(h.recs))
	assert.Equal(t, digest(t, want), digest(t, fresh), "the state is a plain replay of the log")
}
