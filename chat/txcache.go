package chat

// cachedKV remembers, for the length of one transaction, the values read
// and written through it, so that applying a batch reads each key from the
// store at most once. Applying a send reads its client's dedup record
// twice, and every record reads the clock, expiry and purge keys; each
// store read is a walk of Badger's memtables and levels, misses (the common
// case for the purge key and for new results) being the dearest.
//
// It is sound because a transaction sees its own writes and nothing else's:
// the cache only short-cuts what the store would answer. Scan is passed
// through, so it sees writes as the store does.
type cachedKV struct {
	kv KV
	// vals maps a key to its current value in the transaction: ok false
	// when it is known to be absent.
	vals map[string]cachedValue
}

type cachedValue struct {
	v  []byte
	ok bool
}

// cachedKeysHint presizes the cache for a small batch: a send touches about
// fifteen keys.
const cachedKeysHint = 32

func newCachedKV(kv KV) *cachedKV {
	return &cachedKV{kv: kv, vals: make(map[string]cachedValue, cachedKeysHint)}
}

// Get implements KV. Callers must not modify the returned value.
func (c *cachedKV) Get(key []byte) ([]byte, bool, error) {
	if cv, hit := c.vals[string(key)]; hit {
		return cv.v, cv.ok, nil
	}
	v, ok, err := c.kv.Get(key)
	if err != nil {
		return nil, false, err
	}
	c.vals[string(key)] = cachedValue{v: v, ok: ok}
	return v, ok, nil
}

// Set implements KV.
func (c *cachedKV) Set(key, value []byte) error {
	if err := c.kv.Set(key, value); err != nil {
		return err
	}
	// Kept without a copy: the apply code never modifies a value it has
	// handed to Set (KV would allow it; cachedKV is only used by Apply).
	c.vals[string(key)] = cachedValue{v: value, ok: true}
	return nil
}

// Delete implements KV.
func (c *cachedKV) Delete(key []byte) error {
	if err := c.kv.Delete(key); err != nil {
		return err
	}
	c.vals[string(key)] = cachedValue{}
	return nil
}

// Scan implements KV.
func (c *cachedKV) Scan(prefix, start []byte, fn func(key, value []byte) (bool, error)) error {
	return c.kv.Scan(prefix, start, fn)
}
