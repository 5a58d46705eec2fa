package eventlog

import (
	"encoding/binary"
	"fmt"
)

// The key space eventlog owns inside the Badger database. Other packages
// (the chat state, under "c/") must not write under these prefixes.
//
//	l/<offset>     a record, value = EncodeRecord (8-byte big-endian offset, so
//	               key order is offset order)
//	r/<seq>        a rolled-back record, same value format (8-byte big-endian
//	               sequence: oldest truncation first)
//	m/base         the offset before First() and its epoch (Compact, Restore)
//	m/epochs       the epoch history
//	m/pending      an unfinished multi-transaction Truncate or Restore
//	m/rbfirst      the first sequence the rollback area still holds
//	m/meta/<name>  SetMeta values
const (
	prefixRecord   = "l/"
	prefixRollback = "r/"
	keyBase        = "m/base"
	keyEpochs      = "m/epochs"
	keyPending     = "m/pending"
	keyRBFirst     = "m/rbfirst"
	prefixMeta     = "m/meta/"
)

// KeyPrefixes lists the key prefixes eventlog owns in the database returned
// by [BadgerLog.DB]; everything else is free for other packages.
func KeyPrefixes() []string { return []string{prefixRecord, prefixRollback, "m/"} }

func recordKey(off Offset) []byte { return seqKey(prefixRecord, uint64(off)) }

func rollbackKey(seq uint64) []byte { return seqKey(prefixRollback, seq) }

func seqKey(prefix string, n uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], n)
	return k
}

// parseSeqKey returns the number in a key built by seqKey with prefix.
func parseSeqKey(prefix string, key []byte) (uint64, error) {
	if len(key) != len(prefix)+8 || string(key[:len(prefix)]) != prefix {
		return 0, fmt.Errorf("malformed key %q", key)
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), nil
}

// base is the persisted start of the log: the offset before First() and the
// epoch of that (compacted or snapshotted) record.
type base struct {
	Offset Offset `msgpack:"offset"`
	Epoch  Epoch  `msgpack:"epoch"`
}

// pending records a Truncate or Restore too large for one transaction. It is
// written in the operation's first transaction, which is its commit point:
// from then on records above After are invisible, and the rest of the work
// (moving or deleting them) is finished by the writer or, after a crash, by
// the next read-write open. Deleted in the last transaction.
type pending struct {
	After Offset `msgpack:"after"`
	// Rollback: move the records above After to the rollback area, record
	// After+1+i to sequence Seq+i. Otherwise delete them (Restore).
	Rollback bool   `msgpack:"rollback"`
	Seq      uint64 `msgpack:"seq"`
}
