package chatdb

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/chat"
)

// prefix is the key space of the chat state; see "Layout" in the package doc.
var prefix = []byte("c/")

// Store is a chat.Store on a Badger database. It is safe for concurrent use
// (as Badger transactions are). It does not own db: closing db is the
// caller's job.
type Store struct {
	db *badger.DB
}

var _ chat.Store = (*Store)(nil)

// New returns a Store keeping the chat state in db under "c/", for callers
// that bring their own database (tests, scratch states). Replicas use Open.
func New(db *badger.DB) *Store { return &Store{db: db} }

// View runs fn in a read-only Badger transaction.
func (s *Store) View(fn func(chat.KV) error) error {
	return s.db.View(func(txn *badger.Txn) error { return fn(&kv{txn: txn}) })
}

// Update runs fn in a read-write Badger transaction and commits it if fn
// succeeds. Badger's ErrTxnTooBig is reported wrapping chat.ErrTxnTooBig.
func (s *Store) Update(fn func(chat.KV) error) error {
	err := s.db.Update(func(txn *badger.Txn) error { return fn(&kv{txn: txn}) })
	if errors.Is(err, badger.ErrTxnTooBig) && !errors.Is(err, chat.ErrTxnTooBig) {
		return fmt.Errorf("%w: %w", chat.ErrTxnTooBig, err)
	}
	return err
}

type kv struct {
	txn *badger.Txn
}

func key(k []byte) []byte {
	b := make([]byte, 0, len(prefix)+len(k))
	return append(append(b, prefix...), k...)
}

func (t *kv) Get(k []byte) ([]byte, bool, error) {
	item, err := t.txn.Get(key(k))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %q: %w", k, err)
	}
	// Copy: Badger's value buffer is valid only inside the transaction.
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("read value of %q: %w", k, err)
	}
	return v, true, nil
}

func (t *kv) Set(k, v []byte) error {
	// Badger keeps references to key and value until commit; the caller may
	// reuse its buffers, so copy the value (key() already copies the key).
	if err := t.txn.Set(key(k), bytes.Clone(v)); err != nil {
		return t.wrap("set", k, err)
	}
	return nil
}

func (t *kv) Delete(k []byte) error {
	if err := t.txn.Delete(key(k)); err != nil {
		return t.wrap("delete", k, err)
	}
	return nil
}

func (t *kv) wrap(op string, k []byte, err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%s %q: %w: %w", op, k, chat.ErrTxnTooBig, err)
	}
	return fmt.Errorf("%s %q: %w", op, k, err)
}

func (t *kv) Scan(p, start []byte, fn func(key, value []byte) (bool, error)) error {
	full := key(p)
	seek := full
	if bytes.Compare(start, p) > 0 {
		seek = key(start)
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = full
	// Values are read one at a time in fn; prefetching would load values
	// that a short scan (a page, a seek for the first key) never uses.
	opts.PrefetchValues = false
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(seek); it.ValidForPrefix(full); it.Next() {
		item := it.Item()
		var more bool
		err := item.Value(func(v []byte) error {
			var err error
			more, err = fn(item.Key()[len(prefix):], v)
			return err
		})
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}
