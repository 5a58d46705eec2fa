package chat

// KV is one transaction's view of the state store. Keys are opaque bytes
// chosen by State; the store keeps them in bytewise order.
//
// Slices passed in (keys, values) are not retained: the store copies what it
// keeps. Values returned by Get may be kept by the caller but must not be
// modified; keys and values passed to Scan's fn are valid only during that
// call.
type KV interface {
	// Get returns the value of key, ok false if there is none.
	Get(key []byte) (value []byte, ok bool, err error)
	// Set stores value under key. A store that cannot hold more writes in
	// this transaction returns an error wrapping ErrTxnTooBig.
	Set(key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key []byte) error
	// Scan calls fn for every key that starts with prefix and is >= start,
	// in key order, until fn returns more == false or an error (which Scan
	// returns). A nil start means from the beginning of prefix. fn may call
	// Set and Delete; whether the running scan sees those writes is
	// unspecified.
	Scan(prefix, start []byte, fn func(key, value []byte) (more bool, err error)) error
}

// Store runs transactions on the state. Both methods pass fn a KV valid only
// during the call. If fn returns an error, Update writes nothing and returns
// that error; otherwise its writes are committed atomically.
type Store interface {
	View(fn func(KV) error) error
	Update(fn func(KV) error) error
}
