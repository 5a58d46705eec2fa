package replica

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/replichat/replichat/eventlog"
)

// MetaStore is what EnsureIdentity needs of a log: its meta values and
// whether it holds anything yet.
type MetaStore interface {
	Meta(name string) (value []byte, ok bool, err error)
	SetMeta(name string, value []byte) error
	Last() eventlog.Offset
}

// EnsureIdentity returns the identity of the data directory whose log is
// log, creating it on first start from random (crypto/rand.Reader in
// production; a seeded source in the simulator) and persisting it. created
// reports whether it was created now.
//
// A directory whose log already holds records or a hard state but no
// identity was written before identities existed: its identity is created
// Legacy, so that the ISR records of its log (which name members without a
// disk) are still its own. An empty directory gets a fresh identity: if it
// once belonged to this replica (the disk was wiped or replaced), it is a new
// member now, and ISR records naming its former self are not about it.
//
// An identity naming another replica id is ErrWrongIdentity: the directory
// of replica 1 started as replica 2 must not serve as either.
func EnsureIdentity(log MetaStore, self NodeID, random io.Reader) (id Identity, created bool, err error) {
	b, ok, err := log.Meta(IdentityKey)
	if err != nil {
		return Identity{}, false, fmt.Errorf("read identity: %w", err)
	}
	if ok {
		id, err := DecodeIdentity(b)
		if err != nil {
			return Identity{}, false, err
		}
		if id.Replica != self {
			return Identity{}, false, fmt.Errorf("%w: the data directory belongs to replica %s (identity %s), this is replica %s",
				ErrWrongIdentity, id.Replica, id, self)
		}
		return id, false, nil
	}
	_, hasHard, err := log.Meta(HardStateKey)
	if err != nil {
		return Identity{}, false, fmt.Errorf("read hard state: %w", err)
	}
	id = Identity{Replica: self, Legacy: hasHard || log.Last() > 0}
	var buf [8]byte
	for id.Disk == 0 {
		if _, err := io.ReadFull(random, buf[:]); err != nil {
			return Identity{}, false, fmt.Errorf("create identity: %w", err)
		}
		id.Disk = binary.BigEndian.Uint64(buf[:])
	}
	v, err := EncodeIdentity(id)
	if err != nil {
		return Identity{}, false, err
	}
	if err := log.SetMeta(IdentityKey, v); err != nil {
		return Identity{}, false, fmt.Errorf("persist identity: %w", err)
	}
	return id, true, nil
}

// readIdentity returns the identity EnsureIdentity stored in log.
func readIdentity(log LogReader) (Identity, error) {
	b, ok, err := log.Meta(IdentityKey)
	if err != nil {
		return Identity{}, fmt.Errorf("read identity: %w", err)
	}
	if !ok {
		return Identity{}, ErrNoIdentity
	}
	return DecodeIdentity(b)
}
