package chat

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingKV counts the reads that reach the store and fails the operations
// named in fail.
type countingKV struct {
	KV
	gets int
	fail map[string]error // by op: "get", "set", "delete"
}

func (c *countingKV) Get(key []byte) ([]byte, bool, error) {
	c.gets++
	if err := c.fail["get"]; err != nil {
		return nil, false, err
	}
	return c.KV.Get(key)
}

func (c *countingKV) Set(key, value []byte) error {
	if err := c.fail["set"]; err != nil {
		return err
	}
	return c.KV.Set(key, value)
}

func (c *countingKV) Delete(key []byte) error {
	if err := c.fail["delete"]; err != nil {
		return err
	}
	return c.KV.Delete(key)
}

func TestCachedKV_AnswersAsTheStore(t *testing.T) {
	store := NewMemStore()
	require.NoError(t, store.Update(func(kv KV) error { return kv.Set([]byte("a"), []byte("1")) }))
	err := store.Update(func(kv KV) error {
		inner := &countingKV{KV: kv}
		c := newCachedKV(inner)
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
		require.NoError(t, c.Set([]byte("missing"), []byte("3")))
		v, _ = get("a")
		assert.Equal(t, "2", v, "reads see the transaction's writes")
		v, ok = get("missing")
		assert.True(t, ok)
		assert.Equal(t, "3", v)

		require.NoError(t, c.Delete([]byte("a")))
		_, ok = get("a")
		assert.False(t, ok, "a deleted key reads as absent")
		assert.Equal(t, 2, inner.gets)

		// Scan goes to the store, which holds the writes.
		var keys []string
		require.NoError(t, c.Scan(nil, nil, func(k, _ []byte) (bool, error) {
			keys = append(keys, string(k))
			return true, nil
		}))
		assert.Equal(t, []string{"missing"}, keys)
		return nil
	})
	require.NoError(t, err)
}

func TestCachedKV_Errors(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		op  string
		run func(c *cachedKV) error
	}{
		{"get", func(c *cachedKV) error { _, _, err := c.Get([]byte("a")); return err }},
		{"set", func(c *cachedKV) error { return c.Set([]byte("a"), []byte("new")) }},
		{"delete", func(c *cachedKV) error { return c.Delete([]byte("a")) }},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			store := NewMemStore()
			require.NoError(t, store.Update(func(kv KV) error { return kv.Set([]byte("a"), []byte("old")) }))
			err := store.View(func(kv KV) error {
				inner := &countingKV{KV: kv, fail: map[string]error{tt.op: boom}}
				c := newCachedKV(inner)
				require.ErrorIs(t, tt.run(c), boom)
				// A failed operation leaves nothing cached: the next read
				// goes to the store again.
				delete(inner.fail, tt.op)
				v, ok, err := c.Get([]byte("a"))
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Equal(t, "old", string(v))
				return nil
			})
			require.NoError(t, err)
		})
	}
}
