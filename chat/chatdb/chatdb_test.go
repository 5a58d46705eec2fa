package chatdb_test

// Goal: chatdb.Store and chat.MemStore honour the same chat.Store contract
// (one suite runs on both), chatdb keeps everything under "c/" next to any
// other keys of a shared database, and Badger's transaction limit surfaces as
// chat.ErrTxnTooBig so that State.Apply can split its batches.

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

func openBadger(t testing.TB, opts badger.Options) *badger.DB {
	db, err := badger.Open(opts.WithLogger(nil))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func stores(t *testing.T, fn func(t *testing.T, s chat.Store)) {
	t.Run("Memory", func(t *testing.T) { fn(t, chat.NewMemStore()) })
	t.Run("Badger", func(t *testing.T) {
		fn(t, chatdb.New(openBadger(t, badger.DefaultOptions(t.TempDir()))))
	})
}

func scanAll(t *testing.T, kv chat.KV, prefix, start string) []string {
	var out []string
	require.NoError(t, kv.Scan([]byte(prefix), []byte(start), func(k, v []byte) (bool, error) {
		out = append(out, string(k)+"="+string(v))
		return true, nil
	}))
	return out
}

func TestStore_Contract(t *testing.T) {
	stores(t, func(t *testing.T, s chat.Store) {
		require.NoError(t, s.Update(func(kv chat.KV) error {
			for _, k := range []string{"b/2", "a/1", "b/1", "b/3", "c", "b"} {
				val := []byte("v" + k)
				require.NoError(t, kv.Set([]byte(k), val))
				val[0] = 'X' // the store must have copied it
			}
			v, ok, err := kv.Get([]byte("b/2"))
			require.NoError(t, err)
			assert.True(t, ok, "a transaction reads its own writes")
			assert.Equal(t, "vb/2", string(v))
			return nil
		}))
		all := []string{"a/1=va/1", "b=vb", "b/1=vb/1", "b/2=vb/2", "b/3=vb/3", "c=vc"}
		require.NoError(t, s.View(func(kv chat.KV) error {
			assert.Equal(t, all, scanAll(t, kv, "", ""))
			assert.Equal(t, []string{"b/1=vb/1", "b/2=vb/2", "b/3=vb/3"}, scanAll(t, kv, "b/", ""))
			assert.Equal(t, []string{"b/2=vb/2", "b/3=vb/3"}, scanAll(t, kv, "b/", "b/2"))
			assert.Equal(t, []string{"b/1=vb/1", "b/2=vb/2", "b/3=vb/3"}, scanAll(t, kv, "b/", "a"), "start before prefix")
			assert.Empty(t, scanAll(t, kv, "b/", "b/4"))
			assert.Empty(t, scanAll(t, kv, "x", ""))
			_, ok, err := kv.Get([]byte("nope"))
			require.NoError(t, err)
			assert.False(t, ok)

			var first []string
			require.NoError(t, kv.Scan([]byte("b/"), nil, func(k, _ []byte) (bool, error) {
				first = append(first, string(k))
				return false, nil
			}))
			assert.Equal(t, []string{"b/1"}, first, "scan stops when fn says so")
			boom := errors.New("boom")
			err = kv.Scan(nil, nil, func(_, _ []byte) (bool, error) { return true, boom })
			assert.ErrorIs(t, err, boom)
			return nil
		}))

		// A failed Update leaves nothing behind.
		boom := errors.New("boom")
		err := s.Update(func(kv chat.KV) error {
			require.NoError(t, kv.Set([]byte("a/1"), []byte("changed")))
			require.NoError(t, kv.Set([]byte("new"), []byte("x")))
			require.NoError(t, kv.Delete([]byte("b/1")))
			return boom
		})
		assert.ErrorIs(t, err, boom)
		require.NoError(t, s.View(func(kv chat.KV) error {
			assert.Equal(t, all, scanAll(t, kv, "", ""))
			return nil
		}))

		// Deletes, also of missing keys, and writes while scanning.
		require.NoError(t, s.Update(func(kv chat.KV) error {
			require.NoError(t, kv.Delete([]byte("missing")))
			return kv.Scan([]byte("b/"), nil, func(k, _ []byte) (bool, error) {
				return true, kv.Delete(bytes.Clone(k))
			})
		}))
		require.NoError(t, s.View(func(kv chat.KV) error {
			assert.Equal(t, []string{"a/1=va/1", "b=vb", "c=vc"}, scanAll(t, kv, "", ""))
			assert.Error(t, kv.Set([]byte("x"), nil), "View is read-only")
			assert.Error(t, kv.Delete([]byte("a/1")), "View is read-only")
			return nil
		}))
	})
}

func TestStore_Prefix(t *testing.T) {
	db := openBadger(t, badger.DefaultOptions(t.TempDir()))
	require.NoError(t, db.Update(func(txn *badger.Txn) error {
		// The event log's keys sort around "c/" and must stay invisible.
		for _, k := range []string{"b/z", "c", "cc", "l/1", "m/epoch"} {
			require.NoError(t, txn.Set([]byte(k), []byte("log")))
		}
		return nil
	}))
	s := chatdb.New(db)
	require.NoError(t, s.Update(func(kv chat.KV) error { return kv.Set([]byte("applied"), []byte("1")) }))
	require.NoError(t, s.View(func(kv chat.KV) error {
		assert.Equal(t, []string{"applied=1"}, scanAll(t, kv, "", ""))
		return nil
	}))
	require.NoError(t, db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte("c/applied"))
		return err
	}))
}

func TestStore_TxnTooBig(t *testing.T) {
	// A small memtable makes Badger's per-transaction limit small.
	db := openBadger(t, badger.DefaultOptions(t.TempDir()).WithMemTableSize(1<<20).WithValueThreshold(1<<10))
	s := chatdb.New(db)
	err := s.Update(func(kv chat.KV) error {
		for i := range 100_000 {
			if err := kv.Set(fmt.Appendf(nil, "k%08d", i), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, chat.ErrTxnTooBig)
	assert.ErrorIs(t, err, badger.ErrTxnTooBig)
}

// TestState_ApplySplitsOnBadger applies a batch bigger than one Badger
// transaction: State.Apply must split it and reach the same state.
func TestState_ApplySplitsOnBadger(t *testing.T) {
	recs := sends(t, 1500)
	mem := chat.NewState(chat.NewMemStore())
	require.NoError(t, mem.Apply(recs))

	db := openBadger(t, badger.DefaultOptions(t.TempDir()).WithMemTableSize(1<<20).WithValueThreshold(1<<10))
	store := &refusals{Store: chatdb.New(db)}
	st := chat.NewState(store)
	require.NoError(t, st.Apply(recs))
	assert.Positive(t, store.n, "the batch did not fit one transaction")
	assert.Equal(t, eventlog.Offset(len(recs)), st.Applied())
	want, err := mem.Digest()
	require.NoError(t, err)
	got, err := st.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, got)
	require.NoError(t, st.Check())

	// Reopening resumes from the stored offset.
	again := chat.NewState(chatdb.New(db))
	assert.Equal(t, eventlog.Offset(len(recs)), again.Applied())
}

// refusals counts the Updates refused as too big.
type refusals struct {
	chat.Store
	n int
}

func (r *refusals) Update(fn func(chat.KV) error) error {
	err := r.Store.Update(fn)
	if errors.Is(err, chat.ErrTxnTooBig) {
		r.n++
	}
	return err
}

// sends returns a log that registers two users and sends n messages
// between them.
func sends(t testing.TB, n int) []eventlog.Record {
	recs, err := sendRecords(n)
	require.NoError(t, err)
	return recs
}

// sendRecords is sends without a testing.TB, for the crash test's child
// process. The records depend only on n.
func sendRecords(n int) ([]eventlog.Record, error) {
	var recs []eventlog.Record
	add := func(ev chat.Event, client string, seq uint64) error {
		typ, data, err := chat.EncodeEvent(ev)
		if err != nil {
			return err
		}
		recs = append(recs, eventlog.Record{Offset: eventlog.Offset(len(recs) + 1), Epoch: 1, Type: typ,
			ClientID: client, Seq: seq, Time: int64(len(recs)+1) * 1e9, Data: data})
		return nil
	}
	if err := add(&chat.RegisterEvent{Name: "ann", PasswordHash: "$argon2id$x"}, "a", 1); err != nil {
		return nil, err
	}
	if err := add(&chat.RegisterEvent{Name: "bob", PasswordHash: "$argon2id$x"}, "b", 1); err != nil {
		return nil, err
	}
	for i := range n {
		err := add(&chat.SendEvent{MessageID: uint64(i + 1), FromUID: uint64(1 + i%2), ToUID: uint64(2 - i%2),
			Body: "hello, this is a message of moderate length"}, fmt.Sprintf("c%d", i%8), uint64(i+2))
		if err != nil {
			return nil, err
		}
	}
	return recs, nil
}
