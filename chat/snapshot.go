package chat

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/eventlog/mpack"
)

// Snapshot stream format (msgpack values, one after another):
//
//	snapHeader
//	snapEntry{Key, Value}   for every state key, in key order
//	snapEntry{End: true, Sum: Digest}
//
// In version 2 (written) the entries after the header are an S2 stream
// (github.com/klauspost/compress/s2, framed, with a CRC per block);
// version 1 (uncompressed, written before) is still read. Uncompressed, a
// snapshot took 2.5 times the space of the state's Badger tables, which
// compress their blocks. S2, like the tables' Snappy, has no entropy
// coder: text it cannot match stays as it is, which is what the tests that
// look for deleted messages in the data files rely on.
const (
	snapFormat       = "replichat.chat.snapshot"
	snapVersion      = 2 // S2-compressed entries
	snapVersionPlain = 1
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

// WriteSnapshot streams the whole replicated state (including the applied
// offset and the dedup table, not the local undo history) to w, from one
// consistent read transaction, and returns the applied offset of that view:
// the last record the snapshot covers. It may run concurrently with Apply
// (on a MemStore, Apply then waits for it).
func (s *State) WriteSnapshot(w io.Writer) (eventlog.Offset, error) {
	bw := bufio.NewWriter(w)
	enc := msgpack.NewEncoder(bw)
	h := sha256.New()
	var applied uint64
	err := s.store.View(func(kv KV) error {
		if err := checkNotRestoring(kv); err != nil {
			return err
		}
		// A state part way through a rollback holds records its log may
		// have lost: nobody should receive it.
		if to, pending, err := pendingRollback(kv); err != nil || pending {
			if err == nil {
				err = &IncompleteRollbackError{To: eventlog.Offset(to)}
			}
			return err
		}
		var err error
		if applied, err = getU64(kv, keyApplied); err != nil {
			return err
		}
		if err := enc.Encode(&snapHeader{Format: snapFormat, Version: snapVersion}); err != nil {
			return err
		}
		// One goroutine, this one: the snapshot is paced to a share of a
		// core (shell.Pace), which concurrent compressors would escape.
		zw := s2.NewWriter(bw, s2.WriterConcurrency(1))
		var buf []byte
		if err := scanReplicated(kv, func(k, v []byte) error {
			hashEntry(h, k, v)
			buf = appendSnapEntry(buf[:0], k, v)
			_, err := zw.Write(buf)
			return err
		}); err != nil {
			return err
		}
		if err := msgpack.NewEncoder(zw).Encode(&snapEntry{End: true, Sum: h.Sum(nil)}); err != nil {
			return err
		}
		return zw.Close()
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return 0, fmt.Errorf("write chat snapshot: %w", err)
	}
	return eventlog.Offset(applied), nil
}

// appendSnapEntry appends the msgpack encoding of snapEntry{Key: k, Value:
// v}: the bytes msgpack's reflection encoder gives it (fields in order,
// empty ones left out), at a fraction of its cost (it was a third of a
// snapshot's CPU).
func appendSnapEntry(b, k, v []byte) []byte {
	n := 0
	if len(k) > 0 {
		n++
	}
	if len(v) > 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	if len(k) > 0 {
		b = append(mpack.AppendBinHeader(mpack.AppendStr(b, "k"), len(k)), k...)
	}
	if len(v) > 0 {
		b = append(mpack.AppendBinHeader(mpack.AppendStr(b, "v"), len(v)), v...)
	}
	return b
}

// readSnapEntry reads one snapshot entry (a msgpack map of the snapEntry
// fields present) into e, by hand: the reflection decoder was 40% of a
// restore's CPU.
func readSnapEntry(r *bufio.Reader, e *snapEntry) error {
	n, err := readMapLen(r)
	if err != nil {
		return err
	}
	for range n {
		name, err := readStr(r)
		if err != nil {
			return err
		}
		switch name {
		case "k":
			e.Key, err = readBin(r)
		case "v":
			e.Value, err = readBin(r)
		case "sum":
			e.Sum, err = readBin(r)
		case "end":
			e.End, err = readBool(r)
		default:
			err = fmt.Errorf("unknown field %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func readMapLen(r *bufio.Reader) (int, error) {
	c, err := r.ReadByte()
	switch {
	case err != nil:
		return 0, err
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		n, err := readBE(r, 2)
		return int(n), err
	}
	return 0, fmt.Errorf("not a map (code %#x)", c)
}

func readStr(r *bufio.Reader) (string, error) {
	c, err := r.ReadByte()
	if err != nil {
		return "", err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n, err = readBE(r, 1)
	default:
		return "", fmt.Errorf("not a field name (code %#x)", c)
	}
	if err != nil {
		return "", err
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// readBin reads a bin value (or nil, as an empty one).
func readBin(r *bufio.Reader) ([]byte, error) {
	c, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc4:
		n, err = readBE(r, 1)
	case 0xc5:
		n, err = readBE(r, 2)
	case 0xc6:
		n, err = readBE(r, 4)
	default:
		return nil, fmt.Errorf("not bytes (code %#x)", c)
	}
	if err != nil {
		return nil, err
	}
	if n > restoreChunkBytes*64 {
		return nil, fmt.Errorf("a value of %d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

func readBool(r *bufio.Reader) (bool, error) {
	switch c, err := r.ReadByte(); {
	case err != nil:
		return false, err
	case c == 0xc2:
		return false, nil
	case c == 0xc3:
		return true, nil
	default:
		return false, fmt.Errorf("not a bool (code %#x)", c)
	}
}

// readBE reads an n-byte big-endian unsigned integer.
func readBE(r *bufio.Reader, n int) (uint64, error) {
	var v uint64
	for range n {
		c, err := r.ReadByte()
		if err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		v = v<<8 | uint64(c)
	}
	return v, nil
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
//
// The undo history is cleared with the rest: it undid batches of the state
// replaced. A rollback to before the restore is then impossible.
func (s *State) RestoreSnapshot(r io.Reader) error {
	// The snapshot's requests replace ours: forget what Apply learned,
	// before (a failed restore leaves a state Apply refuses anyway) and after.
	s.seqs.reset()
	defer s.seqs.reset()
	s.committed.reset()
	defer s.committed.reset()
	s.undo.forget()
	defer s.undo.forget()
	if err := s.restore(r); err != nil {
		return fmt.Errorf("restore chat snapshot: %w", err)
	}
	return nil
}

func (s *State) restore(r io.Reader) error {
	// The decoder reads the bufio.Reader itself, without a buffer of its
	// own, so the entries are read from it by hand after the header.
	br := bufio.NewReaderSize(r, 1<<16)
	dec := msgpack.NewDecoder(br)
	var hdr snapHeader
	if err := dec.Decode(&hdr); err != nil {
		return fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if hdr.Format != snapFormat || (hdr.Version != snapVersion && hdr.Version != snapVersionPlain) {
		return fmt.Errorf("%w: format %q version %d", ErrBadSnapshot, hdr.Format, hdr.Version)
	}
	if hdr.Version == snapVersion {
		br = bufio.NewReaderSize(s2.NewReader(br), 1<<16)
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
		if err := readSnapEntry(br, &e); err != nil {
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
		if isLocalKey(e.Key) {
			return fmt.Errorf("%w: local key %q in a snapshot", ErrBadSnapshot, e.Key)
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

// clear deletes every key but the restoring marker (local ones too), in
// bounded chunks.
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
