package chat

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// Snapshot stream format (msgpack values, one after another):
//
//	snapHeader
//	snapEntry{Key, Value}   for every state key, in key order
//	snapEntry{End: true, Sum: Digest}
const (
	snapFormat  = "replichat.chat.snapshot"
	snapVersion = 1
	// restoreChunkEntries and restoreChunkBytes bound one restore
	// transaction, well below Badger's batch limits.
	restoreChunkEntries = 1000
	restoreChunkBytes   = 1 << 20
)

type snapHeader struct {
	Format  string `msgpack:"format"`
	Version int    `msgpack:"version"`
}

type snapEntry struct {
	Key   []byte `msgpack:"k,omitempty"`
	Value []byte `msgpack:"v,omitempty"`
	End   bool   `msgpack:"end,omitempty"`
	Sum   []byte `msgpack:"sum,omitempty"`
}

// WriteSnapshot streams the whole state (including the applied offset and
// the dedup table) to w, from one consistent read transaction.
func (s *State) WriteSnapshot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := msgpack.NewEncoder(bw)
	h := sha256.New()
	err := s.store.View(func(kv KV) error {
		if err := checkNotRestoring(kv); err != nil {
			return err
		}
		if err := enc.Encode(&snapHeader{Format: snapFormat, Version: snapVersion}); err != nil {
			return err
		}
		if err := kv.Scan(nil, nil, func(k, v []byte) (bool, error) {
			hashEntry(h, k, v)
			return true, enc.Encode(&snapEntry{Key: k, Value: v})
		}); err != nil {
			return err
		}
		return enc.Encode(&snapEntry{End: true, Sum: h.Sum(nil)})
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("write chat snapshot: %w", err)
	}
	return nil
}

// RestoreSnapshot replaces the whole state with the snapshot read from r.
// It must not run concurrently with Apply.
//
// Crash safety: a restore spans many transactions (the state may not fit in
// one). The first one writes a "restoring" marker and the last one, after
// the snapshot's digest has been verified, removes it. While the marker is
// present (a crash or error mid-restore), NewState, Apply, Check, Digest and
// WriteSnapshot fail with ErrIncompleteRestore, so a half-restored state is
// never used; running RestoreSnapshot again to completion repairs it.
func (s *State) RestoreSnapshot(r io.Reader) error {
	// The snapshot's requests replace ours: forget what Apply learned,
	// before (a failed restore leaves a state Apply refuses anyway) and after.
	s.seqs.reset()
	defer s.seqs.reset()
	s.committed.reset()
	defer s.committed.reset()
	if err := s.restore(r); err != nil {
		return fmt.Errorf("restore chat snapshot: %w", err)
	}
	return nil
}

func (s *State) restore(r io.Reader) error {
	dec := msgpack.NewDecoder(bufio.NewReader(r))
	var hdr snapHeader
	if err := dec.Decode(&hdr); err != nil {
		return fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if hdr.Format != snapFormat || hdr.Version != snapVersion {
		return fmt.Errorf("%w: format %q version %d", ErrBadSnapshot, hdr.Format, hdr.Version)
	}
	if err := s.store.Update(func(kv KV) error { return kv.Set(keyRestoring, nil) }); err != nil {
		return err
	}
	if err := s.clear(); err != nil {
		return err
	}
	h := sha256.New()
	var (
		chunk []snapEntry
		size  int
		prev  []byte
	)
	flush := func() error {
		err := s.store.Update(func(kv KV) error {
			for _, e := range chunk {
				if err := kv.Set(e.Key, e.Value); err != nil {
					return err
				}
			}
			return nil
		})
		chunk, size = chunk[:0], 0
		return err
	}
	for {
		var e snapEntry
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("%w: entry after %q: %v", ErrBadSnapshot, prev, err)
		}
		if e.End {
			if err := flush(); err != nil {
				return err
			}
			if !bytes.Equal(e.Sum, h.Sum(nil)) {
				return fmt.Errorf("%w: digest mismatch", ErrBadSnapshot)
			}
			break
		}
		if bytes.Compare(e.Key, prev) <= 0 || bytes.Equal(e.Key, keyRestoring) {
			return fmt.Errorf("%w: key %q out of order after %q", ErrBadSnapshot, e.Key, prev)
		}
		prev = e.Key
		hashEntry(h, e.Key, e.Value)
		chunk = append(chunk, e)
		size += len(e.Key) + len(e.Value)
		if len(chunk) >= restoreChunkEntries || size >= restoreChunkBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	var applied uint64
	err := s.store.Update(func(kv KV) error {
		var err error
		if applied, err = getU64(kv, keyApplied); err != nil {
			return err
		}
		return kv.Delete(keyRestoring)
	})
	if err != nil {
		return err
	}
	s.applied.Store(applied)
	s.loadErr.Store(nil)
	return nil
}

// clear deletes every key but the restoring marker, in bounded chunks.
func (s *State) clear() error {
	for {
		var keys [][]byte
		err := s.store.View(func(kv KV) error {
			return kv.Scan(nil, nil, func(k, _ []byte) (bool, error) {
				if !bytes.Equal(k, keyRestoring) {
					keys = append(keys, bytes.Clone(k))
				}
				return len(keys) < restoreChunkEntries, nil
			})
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		err = s.store.Update(func(kv KV) error {
			for _, k := range keys {
				if err := kv.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}
