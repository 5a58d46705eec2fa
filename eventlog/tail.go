package eventlog

// Bounds of a BadgerLog's tail cache.
const (
	// tailRecords is the most recently appended records the cache holds.
	// Readers of a live log (the replication sender, the state applier)
	// read what was just appended, a few batches behind at most.
	tailRecords = 4096
	// tailBytes bounds the encoded bytes the cache holds, so that large
	// records cannot make it hold much memory.
	tailBytes = 4 << 20
)

// tail caches the encoded form of the last records appended, so that Read
// of the log's end (nearly every Read of a running replica) decodes them
// from memory instead of opening a Badger iterator over every level.
// Encoded bytes are kept, not Records: each Read decodes fresh copies, so
// callers own what they get, and the checksum is verified on every read as
// for records read from disk.
//
// Invariant: the cache holds exactly the offsets [first, first+n) and, when
// n > 0, first+n-1 is the log's last offset; ring[off%len(ring)] holds
// offset off's encoding; bytes is the sum of their lengths. The owning
// BadgerLog changes it only while holding both wmu and mu, like last.
type tail struct {
	ring  [][]byte
	first Offset
	n     int
	bytes int
}

// add appends the encoding of offset off, which must follow the cached ones
// (the caller resets the cache otherwise), evicting the oldest as needed.
func (t *tail) add(off Offset, v []byte) {
	if t.ring == nil {
		t.ring = make([][]byte, tailRecords)
	}
	if len(v) > tailBytes || (t.n > 0 && off != t.first+Offset(t.n)) {
		t.reset()
		if len(v) > tailBytes {
			return
		}
	}
	for t.n > 0 && (t.n == len(t.ring) || t.bytes+len(v) > tailBytes) {
		t.dropOldest()
	}
	if t.n == 0 {
		t.first = off
	}
	t.ring[off%Offset(len(t.ring))] = v
	t.n++
	t.bytes += len(v)
}

func (t *tail) dropOldest() {
	i := t.first % Offset(len(t.ring))
	t.bytes -= len(t.ring[i])
	t.ring[i] = nil
	t.first++
	t.n--
}

// reset empties the cache: the log's end moved other than by an append.
func (t *tail) reset() {
	clear(t.ring)
	t.n, t.bytes = 0, 0
}

// get returns the encoding of off, ok false if it is not cached.
func (t *tail) get(off Offset) ([]byte, bool) {
	if t.n == 0 || off < t.first || off >= t.first+Offset(t.n) {
		return nil, false
	}
	return t.ring[off%Offset(len(t.ring))], true
}
