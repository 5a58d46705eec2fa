package chat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// Digest returns a SHA-256 over every replicated state key and value in key
// order (each length-prefixed); local keys (the undo history) are left out.
// Replicas that applied the same records have equal digests; so do a
// restored snapshot and its source.
func (s *State) Digest() ([]byte, error) {
	h := sha256.New()
	err := s.store.View(func(kv KV) error {
		if err := checkNotRestoring(kv); err != nil {
			return err
		}
		return scanReplicated(kv, func(k, v []byte) error {
			hashEntry(h, k, v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("digest chat state: %w", err)
	}
	return h.Sum(nil), nil
}

// scanReplicated calls fn for every replicated key, in key order: the keys
// below prefixLocal (see keys.go).
func scanReplicated(kv KV, fn func(k, v []byte) error) error {
	return kv.Scan(nil, nil, func(k, v []byte) (bool, error) {
		if isLocalKey(k) {
			return false, nil // local keys sort after all others
		}
		return true, fn(k, v)
	})
}

// isLocalKey reports whether k is local bookkeeping, or sorts with it.
func isLocalKey(k []byte) bool { return bytes.Compare(k, prefixLocal) >= 0 }

func hashEntry(h hash.Hash, k, v []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(k)))
	h.Write(n[:])
	h.Write(k)
	binary.BigEndian.PutUint32(n[:], uint32(len(v)))
	h.Write(n[:])
	h.Write(v)
}

// maxCheckProblems bounds the violations Check reports at once.
const maxCheckProblems = 20

// Check verifies the state's invariants (an fsck): every index entry points
// at an existing message and at a live user or one being purged, every message's views match its index
// entries, per-user counts match their indexes, names and origins and users
// point at each other, and the dedup table's bookkeeping agrees with its
// entries.
// Violations are joined into one error wrapping ErrInconsistent. It reads
// the whole state: for tests, the simulator and offline tools; it must not
// run concurrently with Apply (it compares the stored applied offset with
// the one Applied reports).
func (s *State) Check() error {
	var problems []error
	report := func(format string, args ...any) {
		if len(problems) < maxCheckProblems {
			problems = append(problems, fmt.Errorf("%w: "+format, append([]any{ErrInconsistent}, args...)...))
		}
	}
	err := s.store.View(func(kv KV) error {
		if err := checkNotRestoring(kv); err != nil {
			return err
		}
		applied, err := getU64(kv, keyApplied)
		if err != nil {
			return err
		}
		if applied != s.applied.Load() {
			report("applied offset %d, cached %d", applied, s.applied.Load())
		}
		c := checker{kv: kv, report: report, purging: map[uint64]bool{}}
		var queue []uint64
		if _, err := getRec(kv, keyPurge, &queue); err != nil {
			return err
		}
		for _, uid := range queue {
			if _, ok, err := getUser(kv, uid); err != nil || ok {
				c.report("user %d is queued for purge but live (%v)", uid, err)
			}
			c.purging[uid] = true
		}
		for _, step := range []func() error{c.users, c.names, c.origins, c.index, c.messages, c.dedup} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check chat state: %w", err)
	}
	return errors.Join(problems...)
}

type checker struct {
	kv     KV
	report func(format string, args ...any)
	// purging holds deleted accounts whose views are still being removed.
	purging map[uint64]bool
}

func (c checker) users() error {
	nextUID, err := getU64(c.kv, keyNextUID)
	if err != nil {
		return err
	}
	return c.kv.Scan(prefixUser, nil, func(k, v []byte) (bool, error) {
		if len(k) != len(prefixUser)+8 {
			c.report("user key %q has the wrong length", k)
			return true, nil
		}
		uid, _ := suffixU64(k)
		u, _, err := getUser(c.kv, uid)
		if err != nil {
			return false, err
		}
		if u.ID != uid || uid == 0 || uid >= nextUID {
			c.report("user key %d holds id %d (next id %d)", uid, u.ID, nextUID)
		}
		if id, err := getU64(c.kv, nameKey(u.Name)); err != nil || id != uid {
			c.report("user %d: name %q points at %d (%v)", uid, u.Name, id, err)
		}
		if u.Origin != 0 {
			if id, err := getU64(c.kv, originKey(u.Origin)); err != nil || id != uid {
				c.report("user %d: origin %016x points at %d (%v)", uid, u.Origin, id, err)
			}
		}
		hist, err := c.count(historyPrefix(uid))
		if err != nil {
			return false, err
		}
		queue, err := c.count(queuePrefix(uid))
		if err != nil {
			return false, err
		}
		if hist != u.History || queue != u.Unread {
			c.report("user %d counts history %d unread %d, indexes hold %d and %d", uid, u.History, u.Unread, hist, queue)
		}
		return true, nil
	})
}

func (c checker) count(prefix []byte) (uint64, error) {
	var n uint64
	err := c.kv.Scan(prefix, nil, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

func (c checker) names() error {
	return c.kv.Scan(prefixName, nil, func(k, v []byte) (bool, error) {
		name := string(k[len(prefixName):])
		uid, err := decodeU64(v)
		if err != nil {
			c.report("name %q: %v", name, err)
			return true, nil
		}
		u, ok, err := getUser(c.kv, uid)
		if err != nil {
			return false, err
		}
		if !ok || u.Name != name {
			c.report("name %q points at user %d (exists %v, named %q)", name, uid, ok, u.Name)
		}
		return true, nil
	})
}

// origins checks that every origin index entry points at a live user of
// that origin.
func (c checker) origins() error {
	return c.kv.Scan(prefixOrigin, nil, func(k, v []byte) (bool, error) {
		if len(k) != len(prefixOrigin)+8 {
			c.report("origin key %q has the wrong length", k)
			return true, nil
		}
		origin, _ := suffixU64(k)
		uid, err := decodeU64(v)
		if err != nil {
			c.report("origin %016x: %v", origin, err)
			return true, nil
		}
		u, ok, err := getUser(c.kv, uid)
		if err != nil {
			return false, err
		}
		if !ok || u.Origin != origin {
			c.report("origin %016x points at user %d (exists %v, origin %016x)", origin, uid, ok, u.Origin)
		}
		return true, nil
	})
}

// index checks every history and queue entry against its message.
func (c checker) index() error {
	for _, prefix := range [][]byte{prefixHistory, prefixQueue} {
		queue := bytes.Equal(prefix, prefixQueue)
		err := c.kv.Scan(prefix, nil, func(k, v []byte) (bool, error) {
			if len(k) != len(prefix)+16 {
				c.report("index key %q has the wrong length", k)
				return true, nil
			}
			uid := binary.BigEndian.Uint64(k[len(prefix):])
			off := binary.BigEndian.Uint64(k[len(prefix)+8:])
			id, err := decodeU64(v)
			if err != nil {
				c.report("index key %q: %v", k, err)
				return true, nil
			}
			m, ok, err := getMsg(c.kv, id)
			if err != nil {
				return false, err
			}
			switch {
			case !ok:
				c.report("index %q/%d/%d names missing message %d", prefix, uid, off, id)
			case m.Offset != off:
				c.report("index %q/%d/%d names message %d sent at %d", prefix, uid, off, id, m.Offset)
			case queue && (m.To != uid || !m.RecipientView || m.Delivered):
				c.report("queue of user %d holds message %d (to %d, view %v, delivered %v)", uid, id, m.To, m.RecipientView, m.Delivered)
			case !queue && !((m.From == uid && m.SenderView) || (m.To == uid && m.RecipientView)):
				c.report("history of user %d holds message %d without a view", uid, id)
			}
			if _, ok, err := getUser(c.kv, uid); err != nil || (!ok && !c.purging[uid]) {
				c.report("index %q names missing user %d (%v)", prefix, uid, err)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// messages checks every message's views against the index entries.
func (c checker) messages() error {
	has := func(key []byte) bool {
		_, ok, _ := c.kv.Get(key)
		return ok
	}
	return c.kv.Scan(prefixMsg, nil, func(k, v []byte) (bool, error) {
		if len(k) != len(prefixMsg)+8 {
			c.report("message key %q has the wrong length", k)
			return true, nil
		}
		id, _ := suffixU64(k)
		m, _, err := getMsg(c.kv, id)
		if err != nil {
			return false, err
		}
		if m.ID != id {
			c.report("message key %d holds id %d", id, m.ID)
		}
		if !m.SenderView && !m.RecipientView {
			c.report("message %d has no view left", id)
		}
		inFrom, inTo := has(historyKey(m.From, m.Offset)), has(historyKey(m.To, m.Offset))
		if m.From == m.To && (m.SenderView != m.RecipientView || m.SenderView != inFrom) {
			c.report("message %d to self: views %v/%v, history %v", id, m.SenderView, m.RecipientView, inFrom)
		}
		if m.From != m.To && (m.SenderView != inFrom || m.RecipientView != inTo) {
			c.report("message %d: views %v/%v, histories %v/%v", id, m.SenderView, m.RecipientView, inFrom, inTo)
		}
		if queued := has(queueKey(m.To, m.Offset)); queued != (m.RecipientView && !m.Delivered) {
			c.report("message %d: queued %v, recipient view %v, delivered %v", id, queued, m.RecipientView, m.Delivered)
		}
		return true, nil
	})
}

func (c checker) dedup() error {
	err := c.kv.Scan(prefixClient, nil, func(k, v []byte) (bool, error) {
		client := string(k[len(prefixClient)+2:])
		var cr clientRec
		if _, err := getRec(c.kv, k, &cr); err != nil {
			return false, err
		}
		var n uint64
		err := c.kv.Scan(resultPrefix(client), nil, func(rk, _ []byte) (bool, error) {
			n++
			if seq, _ := suffixU64(rk); seq <= cr.Floor {
				c.report("client %q keeps seq %d at or below its floor %d", client, seq, cr.Floor)
			}
			return true, nil
		})
		if err != nil {
			return false, err
		}
		if n != cr.Count || n >= DedupWindow+dedupEvictBatch {
			c.report("client %q counts %d results, holds %d", client, cr.Count, n)
		}
		if _, ok, err := c.kv.Get(idleKey(uint64(cr.Last), client)); err != nil || !ok {
			c.report("client %q has no idle index entry (%v)", client, err)
		}
		return true, c.holes(client, cr)
	})
	if err != nil {
		return err
	}
	// Holes of a client without a record (expired without its holes).
	return c.kv.Scan(prefixHole, nil, func(k, _ []byte) (bool, error) {
		if len(k) < len(prefixHole)+2+8 {
			c.report("hole key %q is too short", k)
			return true, nil
		}
		client := string(k[len(prefixHole)+2 : len(k)-8])
		if _, ok, err := c.kv.Get(clientKey(client)); err != nil || !ok {
			c.report("client %q has a hole but no dedup record (%v)", client, err)
		}
		return true, nil
	})
}

// holes checks client's holes against its record cr: sorted, disjoint and
// not adjacent, between its HoleFloor and its Floor (so no stored result,
// all above Floor, lies in one), and as many as it counts.
func (c checker) holes(client string, cr clientRec) error {
	if cr.HoleFloor > cr.Floor {
		c.report("client %q has hole floor %d above its floor %d", client, cr.HoleFloor, cr.Floor)
	}
	var n uint64
	// minLo is the lowest start the next hole may have: above the hole
	// floor, then past the previous hole and a seq between.
	minLo := cr.HoleFloor + 1
	err := c.kv.Scan(holePrefix(client), nil, func(k, v []byte) (bool, error) {
		n++
		hi, _ := suffixU64(k)
		lo, err := decodeU64(v)
		least := minLo
		minLo = hi + 2
		switch {
		case err != nil:
			c.report("client %q hole ending at %d: %v", client, hi, err)
		case lo > hi || hi > cr.Floor:
			c.report("client %q has hole [%d, %d] with floor %d", client, lo, hi, cr.Floor)
		case lo < least:
			c.report("client %q has hole [%d, %d] below its hole floor %d or overlapping or next to the hole before", client, lo, hi, cr.HoleFloor)
		default:
			if _, ok, err := c.kv.Get(resultKey(client, lo)); err != nil || ok {
				c.report("client %q stores a result for seq %d of its hole [%d, %d] (%v)", client, lo, lo, hi, err)
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if n != cr.Holes || n > maxHolesPerClient {
		c.report("client %q counts %d holes, holds %d (at most %d)", client, cr.Holes, n, maxHolesPerClient)
	}
	return nil
}
