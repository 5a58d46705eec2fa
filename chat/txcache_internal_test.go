package chat

// Goal: cachedKV answers every Get and Scan exactly as the store would had
// each write gone to it at once, reads each key from the store at most
// once, hands the writes to the store only at flush (each key once, its last
// value), and passes every store error through.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingKV counts the operations that reach the store and fails the ones
// named in fail.
type countingKV struct {
	KV
	gets, sets, deletes int
	fail                map[string]error // by op: "get", "set", "delete", "scan"
}

func (c *countingKV) Get(key []byte) ([]byte, bool, error) {
	c.gets++
	if err := c.fail["get"]; err != nil {
		return nil, false, err
	}
	return c.KV.Get(key)
}

func (c *countingKV) Set(key, value []byte) error {
	c.sets++
	if err := c.fail["set"]; err != nil {
		return err
	}
	return c.KV.Set(key, value)
}

func (c *countingKV) Delete(key []byte) error {
	c.deletes++
	if err := c.fail["delete"]; err != nil {
		return err
	}
	return c.KV.Delete(key)
}

func (c *countingKV) Scan(prefix, start []byte, fn func(key, value []byte) (bool, error)) error {
	if err := c.fail["scan"]; err != nil {
		return err
	}
	return c.KV.Scan(prefix, start, fn)
}

func scanKV(t *testing.T, kv KV, prefix, start string, limit int) []string {
	t.Helper()
	var out []string
	err := kv.Scan([]byte(prefix), []byte(start), func(k, v []byte) (bool, error) {
		out = append(out, string(k)+"="+string(v))
		return len(out) < limit, nil
	})
	require.NoError(t, err)
	return out
}

func TestCachedKV_WritesBack(t *testing.T) {
	store := NewMemStore()
	require.NoError(t, store.Update(func(kv KV) error {
		return errors.Join(kv.Set([]byte("a"), []byte("1")), kv.Set([]byte("b"), []byte("old")))
	}))
	err := store.Update(func(kv KV) error {
		inner := &countingKV{KV: kv}
		c := newCachedKV(inner, nil, 0)
		get := func(k string) (string, bool) {
			v, ok, err := c.Get([]byte(k))
			require.NoError(t, err)
			return string(v), ok
		}

		v, ok := get("a")
		assert.True(t, ok)
		assert.Equal(t, "1", v)
		_, ok = get("missing")
		assert.False(t, ok)
		_, _ = get("a")
		_, _ = get("missing")
		assert.Equal(t, 2, inner.gets, "hits and misses are each read from the store once")

		require.NoError(t, c.Set([]byte("a"), []byte("2")))
		require.NoError(t, c.Set([]byte("a"), []byte("3")))
		require.NoError(t, c.Set([]byte("missing"), []byte("4")))
		require.NoError(t, c.Delete([]byte("b")))
		require.NoError(t, c.Set([]byte("gone"), []byte("5")))
		require.NoError(t, c.Delete([]byte("gone")))
		v, _ = get("a")
		assert.Equal(t, "3", v, "reads see the transaction's writes")
		v, ok = get("missing")
		assert.True(t, ok)
		assert.Equal(t, "4", v)
		_, ok = get("b")
		assert.False(t, ok, "a deleted key reads as absent")
		assert.Equal(t, 2, inner.gets, "written keys are known without a read")
		assert.Zero(t, inner.sets+inner.deletes, "nothing is written before flush")
		assert.Equal(t, []string{"a=1", "b=old"}, scanKV(t, inner, "", "", 10))

		assert.Equal(t, []string{"a=3", "missing=4"}, scanKV(t, c, "", "", 10), "scans see the writes")
		require.NoError(t, c.flush())
		assert.Equal(t, 2, inner.sets, "each key is written once, with its last value")
		assert.Equal(t, 2, inner.deletes)
		assert.Equal(t, []string{"a=3", "missing=4"}, scanKV(t, inner, "", "", 10))

		require.NoError(t, c.flush())
		assert.Equal(t, 4, inner.sets+inner.deletes, "a second flush writes nothing again")
		require.NoError(t, c.Set([]byte("c"), []byte("6")))
		require.NoError(t, c.flush())
		assert.Equal(t, 3, inner.sets, "a write after a flush goes at the next one")
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, store.View(func(kv KV) error {
		assert.Equal(t, []string{"a=3", "c=6", "missing=4"}, scanKV(t, kv, "", "", 10))
		return nil
	}))
}

// TestCachedKV_ScanMatchesStore runs random writes and scans both on a
// cachedKV and directly on a store with the same contents: every scan
// (any prefix, start and length) must give the same entries, and after
// flush the stores must hold the same.
func TestCachedKV_ScanMatchesStore(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	key := func() string { return fmt.Sprintf("%c/%d", 'a'+rng.IntN(3), rng.IntN(30)) }
	for round := range 40 {
		cached, direct := NewMemStore(), NewMemStore()
		for range 40 { // committed state
			k, v := []byte(key()), []byte("s")
			require.NoError(t, cached.Update(func(kv KV) error { return kv.Set(k, v) }))
			require.NoError(t, direct.Update(func(kv KV) error { return kv.Set(k, v) }))
		}
		err := cached.Update(func(ckv KV) error {
			c := newCachedKV(ckv, nil, 0)
			return direct.Update(func(dkv KV) error {
				for i := range 200 {
					switch op := rng.IntN(10); {
					case op < 4:
						k, v := []byte(key()), fmt.Appendf(nil, "w%d", i)
						require.NoError(t, c.Set(k, v))
						require.NoError(t, dkv.Set(k, v))
					case op < 7:
						k := []byte(key())
						require.NoError(t, c.Delete(k))
						require.NoError(t, dkv.Delete(k))
					default:
						prefix := []string{"", "a/", "b/1", "c"}[rng.IntN(4)]
						start := []string{"", "a", "a/2", "b/15", "c/3", "d"}[rng.IntN(6)]
						limit := 1 + rng.IntN(40)
						require.Equal(t, scanKV(t, dkv, prefix, start, limit), scanKV(t, c, prefix, start, limit),
							"round %d op %d: scan %q from %q, %d entries", round, i, prefix, start, limit)
					}
				}
				return c.flush()
			})
		})
		require.NoError(t, err)
		var want, got []string
		require.NoError(t, direct.View(func(kv KV) error { want = scanKV(t, kv, "", "", 1000); return nil }))
		require.NoError(t, cached.View(func(kv KV) error { got = scanKV(t, kv, "", "", 1000); return nil }))
		require.Equal(t, want, got, "round %d: the flushed store", round)
	}
}

func TestCachedKV_ScanStopsAndFails(t *testing.T) {
	store := NewMemStore()
	require.NoError(t, store.Update(func(kv KV) error {
		return errors.Join(kv.Set([]byte("k1"), nil), kv.Set([]byte("k3"), nil))
	}))
	boom := errors.New("disk on fire")
	err := store.View(func(kv KV) error {
		inner := &countingKV{KV: kv, fail: map[string]error{}}
		c := newCachedKV(inner, nil, 0)
		require.NoError(t, c.Set([]byte("k2"), nil))
		require.NoError(t, c.Set([]byte("k4"), nil))
		for limit := 1; limit <= 4; limit++ {
			assert.Len(t, scanKV(t, c, "k", "", limit), limit, "a scan stops where fn says, on a cached or a stored key")
		}
		for n := 1; n <= 4; n++ { // fn fails on the nth key
			seen := 0
			err := c.Scan(nil, nil, func(_, _ []byte) (bool, error) {
				if seen++; seen == n {
					return true, boom
				}
				return true, nil
			})
			require.ErrorIs(t, err, boom, "key %d", n)
			assert.Equal(t, n, seen, "no key after the failing one")
		}
		inner.fail["scan"] = boom
		assert.ErrorIs(t, c.Scan(nil, nil, func(_, _ []byte) (bool, error) { return true, nil }), boom)
		return nil
	})
	require.NoError(t, err)
}

func TestCachedKV_Errors(t *testing.T) {
	boom := errors.New("disk on fire")
	t.Run("get", func(t *testing.T) {
		store := NewMemStore()
		require.NoError(t, store.Update(func(kv KV) error { return kv.Set([]byte("a"), []byte("old")) }))
		require.NoError(t, store.View(func(kv KV) error {
			inner := &countingKV{KV: kv, fail: map[string]error{"get": boom}}
			c := newCachedKV(inner, nil, 0)
			_, _, err := c.Get([]byte("a"))
			require.ErrorIs(t, err, boom)
			// A failed read leaves nothing cached: the next one goes to
			// the store again.
			delete(inner.fail, "get")
			v, ok, err := c.Get([]byte("a"))
			require.NoError(t, err)
			assert.True(t, ok)
			assert.Equal(t, "old", string(v))
			return nil
		}))
	})
	for _, op := range []string{"set", "delete"} {
		t.Run(op, func(t *testing.T) {
			store := NewMemStore()
			err := store.Update(func(kv KV) error {
				inner := &countingKV{KV: kv, fail: map[string]error{op: boom}}
				c := newCachedKV(inner, nil, 0)
				require.NoError(t, c.Set([]byte("a"), []byte("new")))
				require.NoError(t, c.Delete([]byte("b")))
				return c.flush()
			})
			require.ErrorIs(t, err, boom, "the store's refusal surfaces at flush")
		})
	}
}

// TestCachedKV_RecordsValuesBefore: with recordUndo, the cache reports every
// key written with its value before the transaction (a read one from what it
// read, a blind one read once at flush, before any write), in the order of
// first writes, and reads nothing more without it.
func TestCachedKV_RecordsValuesBefore(t *testing.T) {
	store := NewMemStore()
	require.NoError(t, store.Update(func(kv KV) error {
		return errors.Join(kv.Set([]byte("a"), []byte("1")), kv.Set([]byte("b"), []byte("old")), kv.Set([]byte("c"), []byte("x")))
	}))
	for _, record := range []bool{false, true} {
		err := store.Update(func(kv KV) error {
			inner := &countingKV{KV: kv}
			c := newCachedKV(inner, nil, 0)
			c.recordUndo = record
			_, _, err := c.Get([]byte("a"))
			require.NoError(t, err)
			require.NoError(t, c.Set([]byte("a"), []byte("2")))   // read first
			require.NoError(t, c.Set([]byte("a"), []byte("3")))   // a second write
			require.NoError(t, c.Delete([]byte("b")))             // blind
			require.NoError(t, c.Set([]byte("new"), []byte("4"))) // blind, absent
			_, _, err = c.Get([]byte("c"))                        // read, never written
			require.NoError(t, err)
			require.NoError(t, c.flush())
			if !record {
				assert.Equal(t, 2, inner.gets, "no read for undo unless recording")
				assert.Empty(t, c.undoEntries())
				return errors.New("roll back")
			}
			assert.Equal(t, 4, inner.gets, "each blind write read once")
			assert.Equal(t, []undoEntry{
				{key: []byte("a"), val: []byte("1"), ok: true, known: true},
				{key: []byte("b"), val: []byte("old"), ok: true, known: true},
				{key: []byte("new"), known: true},
			}, c.undoEntries())
			return nil
		})
		if !record {
			require.Error(t, err)
			continue
		}
		require.NoError(t, err)
	}
}
