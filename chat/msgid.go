package chat

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// Message ids are a function of the request that sends the message, so that
// every primary that decides the request assigns the same id: a retry
// applied on both sides of a forked log, or re-submitted after the fork
// healed, carries the id its sender was acknowledged with, and so does the
// copy that is kept.
//
// Apply stores a message under its event's id when that id is free. When it
// is taken (two requests whose ids collide in 53 bits, a request replayed
// after its client's dedup entry expired, an old event's epoch<<32|n id
// meeting a derived one), it probes: the next candidate is nextMessageID of
// the previous one, until a free id, at most maxIDProbes of them. The probe
// sequence depends only on the id, so every replica stores the message
// under the same id, and the Result (what the client is told) carries the
// id actually stored.

const (
	// messageIDMask keeps ids within 53 bits, the integers a JSON number
	// (an IEEE double, as JavaScript reads it) holds exactly.
	messageIDMask = 1<<53 - 1
	// splitmixGamma is splitmix64's increment (2^64 / golden ratio). The
	// probe adds it before mixing because the finalizer alone maps 0 to 0.
	splitmixGamma = 0x9e3779b97f4a7c15
	// maxIDProbes bounds the ids tried for one send. With 2^53 ids, a
	// second probe is already a rarity; a send that finds them all taken is
	// rejected with ErrMessageExists.
	maxIDProbes = 16
)

// MessageID returns the id of the message sent by request (clientID, seq):
// FNV-1a 64 over the client id and the 8 big-endian bytes of seq, mixed by
// splitmix64's finalizer and masked to 53 bits; never 0 (a zero is replaced
// by nextMessageID(0)).
func MessageID(clientID string, seq uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(clientID))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	if id := splitmix64(h.Sum64()) & messageIDMask; id != 0 {
		return id
	}
	return nextMessageID(0)
}

// nextMessageID is the candidate after id when id is taken: splitmix64's
// step (add the gamma, mix) masked to 53 bits, skipping 0.
func nextMessageID(id uint64) uint64 {
	for {
		id = splitmix64(id+splitmixGamma) & messageIDMask
		if id != 0 {
			return id
		}
	}
}

// splitmix64 is the finalizer of splitmix64 (Steele, Lea and Flood, 2014):
// a bijection of uint64 whose every output bit depends on every input bit.
func splitmix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// placeMessage returns the id to store a new message under: id (its event's)
// if free, else the first free candidate of its probe sequence.
func placeMessage(kv KV, id uint64) (uint64, error) {
	first := id
	for range maxIDProbes {
		_, taken, err := kv.Get(msgKey(id))
		if err != nil || !taken {
			return id, err
		}
		id = nextMessageID(id)
	}
	return 0, fmt.Errorf("%w: %d and the %d ids after it", ErrMessageExists, first, maxIDProbes-1)
}

// sendApplied reports whether ev's message is stored already: a message
// with ev's sender, recipient and body under ev's id or a probe candidate
// after it, before the first free one. It dedups a re-submitted send that
// the dedup table cannot vouch for (below its client's HoleFloor). A
// different message under the id (a collision) does not count: the send
// was probed past it, as placeMessage does. Sender and recipient are the
// accounts ev names here (sentBy).
func sendApplied(kv KV, ev *SendEvent) (bool, error) {
	id := ev.MessageID
	if id == 0 {
		return false, nil // rejected by applySend anyway
	}
	from, ok, err := sentBy(kv, ev.FromUID, ev.FromOrigin)
	if err != nil || !ok {
		return false, err
	}
	to, ok, err := sentBy(kv, ev.ToUID, ev.ToOrigin)
	if err != nil || !ok {
		return false, err
	}
	for range maxIDProbes {
		m, ok, err := getMsg(kv, id)
		if err != nil || !ok {
			return false, err
		}
		if m.From == from && m.To == to && m.Body == ev.Body {
			return true, nil
		}
		id = nextMessageID(id)
	}
	return false, nil
}

// sentBy returns the local user id of the account an event names (uid,
// origin), for comparing with a stored message's: the resolved account's,
// or, for an event without an origin, uid itself even if that account was
// deleted since (a message outlives its sender). ok is false for an
// account of that origin that does not exist here: no message of it is
// stored, and applySend rejects the send.
func sentBy(kv KV, uid, origin uint64) (uint64, bool, error) {
	u, err := resolveUser(kv, uid, origin)
	switch {
	case err == nil:
		return u.ID, true, nil
	case Code(err) == CodeInternal:
		return 0, false, err
	case origin == 0:
		return uid, true, nil
	}
	return 0, false, nil
}
