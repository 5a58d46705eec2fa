package chat

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// Account origins: what an event's user reference means on every side of a
// fork.
//
// User ids are assigned at apply from a counter, so during a fork (only
// under partitions) each side assigns the same ids to different accounts:
// the losing side's c1 is user 2, the winning side's c2 is user 2 too. A
// record of the losing side that names user 2 (a send from c1, to c1, c1
// deleting its account) is re-submitted to the winning side after healing,
// where user 2 is c2: a send shown from another sender, a delete-account
// that deletes someone else's account.
//
// So every account also has an origin: a hash of its register request
// (client id, seq), AccountOrigin, which is the same on every side, since
// a register is re-submitted with its client id and seq. The user record
// holds it (userRec.Origin), the index o/<origin> maps it to the local user
// id, and every event that names a user carries the origin next to the id
// (Decide copies it from the user record it reads anyway). Apply reads the
// user record of the event's id, as it always did; if that account has the
// event's origin (the normal case: no extra read) it is the one. If not,
// the id means another account on this side (or none), and the event's
// account is the one the index names; if the index names none, that
// account does not exist on this side (never registered here, or deleted)
// and the event is rejected with ErrUnknownUser, a domain rejection like
// any other (the server's re-submission counters and warnings report it).
//
// Events without origins (logs written before origins existed) and accounts
// without one (registered by such a log, or by a record without a client
// id) keep the old meaning: the id alone. A register event says whether its
// account takes an origin (RegisterEvent.Origin), so that replaying an old
// log gives the state it gave, byte for byte.
//
// Origins are 64-bit hashes. Should two register requests ever hash alike
// (about 2^-64 per pair), the second account is registered without an
// origin, deterministically, and events naming it mean its id alone.

// AccountOrigin returns the origin of the account created by register
// request (clientID, seq): FNV-1a 64 over a domain tag, the client id and
// the 8 big-endian bytes of seq, mixed by splitmix64's finalizer; never 0
// (0 means "no origin").
func AccountOrigin(clientID string, seq uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte("chat.account\x00"))
	h.Write([]byte(clientID))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	if o := splitmix64(h.Sum64()); o != 0 {
		return o
	}
	return 1
}

// resolveUser returns the live account an event names by user id uid and
// origin (0: none, the id alone): the account uid if it has that origin,
// else the one the origin index names. A reference to an account that is
// not live on this side is ErrUnknownUser.
func resolveUser(kv KV, uid, origin uint64) (userRec, error) {
	u, ok, err := getUser(kv, uid)
	if err != nil {
		return u, err
	}
	if ok && (u.Origin == origin || origin == 0) {
		return u, nil
	}
	if origin == 0 {
		return u, fmt.Errorf("%w: user id %d", ErrUnknownUser, uid)
	}
	// uid is another account here, or none: the event was decided on
	// another side of a fork.
	local, ok, err := getU64OK(kv, originKey(origin))
	if err != nil {
		return u, err
	}
	if !ok {
		return u, fmt.Errorf("%w: user id %d (account origin %016x) does not exist on this replica's side of a fork",
			ErrUnknownUser, uid, origin)
	}
	u, ok, err = getUser(kv, local)
	if err == nil && (!ok || u.Origin != origin) {
		err = fmt.Errorf("%w: account origin %016x points at user %d (exists %v, origin %016x)",
			ErrInconsistent, origin, local, ok, u.Origin)
	}
	return u, err
}

// getU64OK reads a counter-like key, reporting whether it exists.
func getU64OK(kv KV, key []byte) (uint64, bool, error) {
	v, ok, err := kv.Get(key)
	if err != nil || !ok {
		return 0, false, err
	}
	n, err := decodeU64(v)
	return n, err == nil, err
}
