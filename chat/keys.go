package chat

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Key layout (chatdb stores every key under "c/"). Numbers are big-endian
// uint64, so key order is numeric order; offsets order indexes by log order.
//
//	applied                         -> offset: the last record applied
//	restoring                       -> present only while a snapshot restore runs
//	next_uid                        -> the next user id to assign (ids start at 1)
//	clock                           -> highest record Time seen (dedup expiry clock)
//	expiry_due                      -> clock at which to look for idle clients next
//	purge                           -> []uid: deleted accounts whose views remain
//	u/<uid>                         -> userRec
//	n/<name>                        -> uid of the live account named name
//	o/<origin>                      -> uid of the live account of that origin (origin.go)
//	m/<msgid>                       -> msgRec
//	h/<uid><offset>                 -> msgid: uid's history view of the send at offset
//	q/<uid><offset>                 -> msgid: uid's unread queue (subset of h/)
//	d/c/<len16><client>             -> clientRec: dedup bookkeeping of a client
//	d/r/<len16><client><seq>        -> Result of (client, seq)
//	d/t/<time><len16><client>       -> "": clients by last activity (to the hour), for expiry
//	d/h/<len16><client><hi>         -> lo: a hole [lo, hi] of the client's seqs (see dedup.go)
//
// Local keys: bookkeeping of this replica only, different on every replica
// (undo.go). They start with '~', which sorts after the first byte of every
// replicated key (all of those start with a lower-case letter), so the
// replicated state is exactly the keys below prefixLocal: Digest, snapshots
// and Check stop there.
//
//	~undo/meta                      -> undoMeta: counts of the undo history
//	~undo/rollback                  -> offset: present only while a RollbackTo to it runs
//	~undo/h/<last>                  -> undoHeader of the batch that ended at offset last
//	~undo/p/<last><page32>          -> a page of that batch's undo entries
var (
	keyApplied   = []byte("applied")
	keyRestoring = []byte("restoring")
	keyNextUID   = []byte("next_uid")
	keyClock     = []byte("clock")
	keyExpiryDue = []byte("expiry_due")
	keyPurge     = []byte("purge")

	prefixUser    = []byte("u/")
	prefixName    = []byte("n/")
	prefixOrigin  = []byte("o/")
	prefixMsg     = []byte("m/")
	prefixHistory = []byte("h/")
	prefixQueue   = []byte("q/")
	prefixClient  = []byte("d/c/")
	prefixResult  = []byte("d/r/")
	prefixIdle    = []byte("d/t/")
	prefixHole    = []byte("d/h/")

	prefixLocal      = []byte("~")
	keyUndoMeta      = []byte("~undo/meta")
	keyRollback      = []byte("~undo/rollback")
	prefixUndoHeader = []byte("~undo/h/")
	prefixUndoPage   = []byte("~undo/p/")
)

func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// keyBuf returns an empty buffer holding prefix, with room for extra more
// bytes, so that a key is built in one allocation.
func keyBuf(prefix []byte, extra int) []byte {
	return append(make([]byte, 0, len(prefix)+extra), prefix...)
}

func userKey(uid uint64) []byte       { return u64(keyBuf(prefixUser, 8), uid) }
func nameKey(name string) []byte      { return append(keyBuf(prefixName, len(name)), name...) }
func originKey(origin uint64) []byte  { return u64(keyBuf(prefixOrigin, 8), origin) }
func msgKey(id uint64) []byte         { return u64(keyBuf(prefixMsg, 8), id) }
func historyPrefix(uid uint64) []byte { return u64(keyBuf(prefixHistory, 8), uid) }
func queuePrefix(uid uint64) []byte   { return u64(keyBuf(prefixQueue, 8), uid) }
func historyKey(uid, off uint64) []byte {
	return u64(u64(keyBuf(prefixHistory, 16), uid), off)
}
func queueKey(uid, off uint64) []byte { return u64(u64(keyBuf(prefixQueue, 16), uid), off) }

// appendClientPart appends the length-prefixed client id, so that no client
// id is a prefix of another's keys.
func appendClientPart(b []byte, client string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(client))), client...)
}
func clientKey(client string) []byte {
	return appendClientPart(keyBuf(prefixClient, 2+len(client)), client)
}
func resultPrefix(client string) []byte {
	return appendClientPart(keyBuf(prefixResult, 2+len(client)), client)
}
func resultKey(client string, seq uint64) []byte {
	return u64(appendClientPart(keyBuf(prefixResult, 2+len(client)+8), client), seq)
}
func holePrefix(client string) []byte {
	return appendClientPart(keyBuf(prefixHole, 2+len(client)), client)
}

// holeKey is the key of client's hole that ends at hi: keyed by its end, so
// that the hole holding seq (if any) is the first key at or after
// holeKey(client, seq).
func holeKey(client string, hi uint64) []byte {
	return u64(appendClientPart(keyBuf(prefixHole, 2+len(client)+8), client), hi)
}
func undoHeaderKey(last uint64) []byte { return u64(keyBuf(prefixUndoHeader, 8), last) }
func undoPageKey(last uint64, page uint32) []byte {
	return binary.BigEndian.AppendUint32(u64(keyBuf(prefixUndoPage, 12), last), page)
}
func idleKey(t uint64, client string) []byte {
	return appendClientPart(u64(keyBuf(prefixIdle, 8+2+len(client)), t), client)
}

// suffixU64 reads the big-endian uint64 at the end of key.
func suffixU64(key []byte) (uint64, error) {
	if len(key) < 8 {
		return 0, fmt.Errorf("%w: key %q too short", ErrInconsistent, key)
	}
	return binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

func decodeU64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %d-byte counter", ErrInconsistent, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// userRec is a live account. Invariant: Unread == number of q/<ID> keys,
// History == number of h/<ID> keys, n/<Name> holds ID, and o/<Origin>
// holds ID if Origin != 0.
type userRec struct {
	ID      uint64 `msgpack:"id"`
	Name    string `msgpack:"name"`
	Hash    string `msgpack:"hash"`
	Created int64  `msgpack:"created"`
	Unread  uint64 `msgpack:"unread"`
	History uint64 `msgpack:"history"`
	// Origin is the account's identity across forks (AccountOrigin of its
	// register request), 0 for an account registered without one. Omitted
	// when zero, so that such an account keeps the bytes it had before
	// origins existed.
	Origin uint64 `msgpack:"origin,omitempty"`
}

// msgRec is a message. Invariant: SenderView <=> h/<From><Offset> exists,
// RecipientView <=> h/<To><Offset> exists (one key when From == To),
// RecipientView && !Delivered <=> q/<To><Offset> exists, and at least one
// view exists (the record is dropped with the last one).
type msgRec struct {
	ID            uint64 `msgpack:"id"`
	From          uint64 `msgpack:"from"`
	FromName      string `msgpack:"from_name"`
	To            uint64 `msgpack:"to"`
	ToName        string `msgpack:"to_name"`
	Body          string `msgpack:"body"`
	Time          int64  `msgpack:"time"`
	Offset        uint64 `msgpack:"offset"`
	SenderView    bool   `msgpack:"sv"`
	RecipientView bool   `msgpack:"rv"`
	Delivered     bool   `msgpack:"delivered"`
}

// clientRec is the dedup bookkeeping of one client. Invariant: Count ==
// number of d/r/<client> keys, d/t/<Last><client> exists, every stored seq
// is > Floor, Holes == number of d/h/<client> keys <= maxHolesPerClient,
// HoleFloor <= Floor, and every hole [lo, hi] has HoleFloor < lo <= hi <=
// Floor, disjoint from and not adjacent to the others.
//
// The hole fields are omitted when zero, so that a client without holes
// keeps the bytes (and digests) it had before holes existed.
type clientRec struct {
	// Last is the clock at its last request, or up to dedupIdleGrain
	// earlier: it is moved only when the clock passed it by the grain.
	Last  int64  `msgpack:"last"`
	Floor uint64 `msgpack:"floor"` // highest seq evicted from the window
	Count uint64 `msgpack:"count"`
	// Holes counts the hole ranges kept (d/h/ keys).
	Holes uint64 `msgpack:"holes,omitempty"`
	// HoleFloor is the highest seq whose hole knowledge was forgotten: at
	// or below it, the table cannot tell an applied seq from a hole.
	HoleFloor uint64 `msgpack:"hole_floor,omitempty"`
}

func getRec(kv KV, key []byte, into any) (bool, error) {
	v, ok, err := kv.Get(key)
	if err != nil || !ok {
		return false, err
	}
	if err := decodeValue(v, into); err != nil {
		return false, fmt.Errorf("%w: decode %q: %v", ErrInconsistent, key, err)
	}
	return true, nil
}

func putRec(kv KV, key []byte, v any) error {
	b, err := encodeValue(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return kv.Set(key, b)
}

// marshalSizeHint is the buffer marshal starts with: most records (a user,
// a message with a short body, a result) fit, so the encoding is one
// allocation instead of a buffer doubled from 64 bytes a few times.
const marshalSizeHint = 256

// marshal is msgpack.Marshal (the same bytes) with a presized buffer.
func marshal(v any) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, marshalSizeHint))
	enc := msgpack.GetEncoder()
	enc.Reset(buf)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func getU64(kv KV, key []byte) (uint64, error) {
	v, ok, err := kv.Get(key)
	if err != nil || !ok {
		return 0, err
	}
	return decodeU64(v)
}

func putU64(kv KV, key []byte, v uint64) error { return kv.Set(key, u64(nil, v)) }

func getUser(kv KV, uid uint64) (userRec, bool, error) {
	var u userRec
	ok, err := getRec(kv, userKey(uid), &u)
	return u, ok, err
}

func getUserByName(kv KV, name string) (userRec, bool, error) {
	v, ok, err := kv.Get(nameKey(name))
	if err != nil || !ok {
		return userRec{}, false, err
	}
	uid, err := decodeU64(v)
	if err != nil {
		return userRec{}, false, err
	}
	u, ok, err := getUser(kv, uid)
	if err == nil && !ok {
		err = fmt.Errorf("%w: name %q points at missing user %d", ErrInconsistent, name, uid)
	}
	return u, ok, err
}

func getMsg(kv KV, id uint64) (msgRec, bool, error) {
	var m msgRec
	ok, err := getRec(kv, msgKey(id), &m)
	return m, ok, err
}
