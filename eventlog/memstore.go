package eventlog

import "slices"

// memChunk is how many records a recordStore chunk holds.
const memChunk = 256

// recordStore is MemoryLog's record sequence: a vector of fixed-size chunks
// that Clone shares copy-on-write, so that copying a log (the simulator keeps
// a crashed node's disk at every crash) costs O(len/chunk) instead of O(len),
// and the first write after a copy copies at most one chunk.
//
// Chunk arrays are never written once shared, which two flags track: a
// clone, a Truncate and a Compact make both the outer slice and the last
// chunk "not owned", and every write first makes what it writes owned.
type recordStore struct {
	size int // records per chunk; memChunk outside tests
	// chunks[0][skip] is record 0; record i is at position skip+i, in chunk
	// (skip+i)/size. Every chunk but the last has len == size.
	chunks [][]memRecord
	skip   int
	n      int
	// outerOwned: chunks' backing array is not shared with a clone.
	// lastOwned: the last chunk's backing array is not shared either.
	outerOwned, lastOwned bool
}

func newRecordStore(size int) recordStore {
	return recordStore{size: size, outerOwned: true, lastOwned: true}
}

func (s *recordStore) len() int { return s.n }

func (s *recordStore) at(i int) *memRecord {
	p := s.skip + i
	return &s.chunks[p/s.size][p%s.size]
}

// clone returns a copy sharing every array with s; both become non-owners.
func (s *recordStore) clone() recordStore {
	s.outerOwned, s.lastOwned = false, false
	return *s
}

func (s *recordStore) ownOuter() {
	if !s.outerOwned {
		s.chunks = slices.Clone(s.chunks)
		s.outerOwned = true
	}
}

func (s *recordStore) append(r memRecord) {
	p := s.skip + s.n
	if p%s.size == 0 { // the last chunk is full, or there is none
		s.ownOuter()
		s.chunks = append(s.chunks, make([]memRecord, 0, s.size))
		s.lastOwned = true
	} else if !s.lastOwned {
		s.ownOuter()
		l := len(s.chunks) - 1
		c := make([]memRecord, len(s.chunks[l]), s.size)
		copy(c, s.chunks[l])
		s.chunks[l] = c
		s.lastOwned = true
	}
	l := len(s.chunks) - 1
	s.chunks[l] = append(s.chunks[l], r)
	s.n++
}

// truncate keeps the first keep records.
func (s *recordStore) truncate(keep int) {
	if keep >= s.n {
		return
	}
	if keep == 0 {
		*s = newRecordStore(s.size)
		return
	}
	p := s.skip + keep
	k := (p + s.size - 1) / s.size
	s.ownOuter()
	s.chunks = s.chunks[:k]
	s.chunks[k-1] = s.chunks[k-1][:p-(k-1)*s.size]
	// A clone taken earlier may still hold the cut-off part of this chunk:
	// the next append must copy it rather than write over it.
	s.lastOwned = false
	s.n = keep
}

// dropFront removes the first d records.
func (s *recordStore) dropFront(d int) {
	if d >= s.n {
		*s = newRecordStore(s.size)
		return
	}
	p := s.skip + d
	k := p / s.size
	// A fresh outer array, so the dropped chunks can be collected.
	s.chunks = slices.Clone(s.chunks[k:])
	s.outerOwned = true
	s.skip = p - k*s.size
	s.n -= d
}
