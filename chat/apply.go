package chat

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/replichat/replichat/eventlog"
)

// MaxClientIDLen is the longest client id the dedup table accepts. A record
// with a longer one is skipped by Apply (it only advances the applied offset).
const MaxClientIDLen = 256

// validName reports whether name is 1..MaxNameLen bytes of [A-Za-z0-9_.-].
// Names are case-sensitive: "Ann" and "ann" are two accounts. The character
// set keeps names safe in terminals and wildcard patterns.
func validName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkName(name string) error {
	if !validName(name) {
		return fmt.Errorf("%w: %q (1-%d characters of A-Z a-z 0-9 _ . -)", ErrInvalidName, name, MaxNameLen)
	}
	return nil
}

func checkBody(body string) error {
	switch {
	case body == "":
		return ErrEmptyMessage
	case len(body) > MaxBodyBytes:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(body), MaxBodyBytes)
	case !utf8.ValidString(body):
		return fmt.Errorf("%w: body is not UTF-8", ErrInvalidArgument)
	}
	return nil
}

func checkIDs(ids []uint64) error {
	if len(ids) == 0 || len(ids) > MaxIDsPerCommand {
		return fmt.Errorf("%w: %d message ids (want 1-%d)", ErrInvalidArgument, len(ids), MaxIDsPerCommand)
	}
	return nil
}

// sortedIDs returns ids sorted, without duplicates, in a new slice.
func sortedIDs(ids []uint64) []uint64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func liveUser(kv KV, uid uint64) (userRec, error) {
	u, ok, err := getUser(kv, uid)
	if err != nil {
		return u, err
	}
	if !ok {
		return u, fmt.Errorf("%w: user id %d", ErrUnknownUser, uid)
	}
	return u, nil
}

func applyRegister(kv KV, rec eventlog.Record, ev *RegisterEvent) (Result, error) {
	if err := checkName(ev.Name); err != nil {
		return Result{}, err
	}
	if !strings.HasPrefix(ev.PasswordHash, "$argon2id$") {
		return Result{}, fmt.Errorf("%w: password hash is not argon2id", ErrInvalidArgument)
	}
	if _, ok, err := kv.Get(nameKey(ev.Name)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%w: %q", ErrUserExists, ev.Name)
		}
		return Result{}, err
	}
	origin, err := registerOrigin(kv, rec, ev)
	if err != nil {
		return Result{}, err
	}
	uid, err := getU64(kv, keyNextUID)
	if err != nil {
		return Result{}, err
	}
	uid = max(uid, 1)
	if err := putU64(kv, keyNextUID, uid+1); err != nil {
		return Result{}, err
	}
	u := userRec{ID: uid, Name: ev.Name, Hash: ev.PasswordHash, Created: rec.Time, Origin: origin}
	if err := putRec(kv, userKey(uid), &u); err != nil {
		return Result{}, err
	}
	if err := putU64(kv, nameKey(ev.Name), uid); err != nil {
		return Result{}, err
	}
	if origin != 0 {
		if err := putU64(kv, originKey(origin), uid); err != nil {
			return Result{}, err
		}
	}
	return Result{UserID: uid}, nil
}

// registerOrigin returns the origin of the account ev creates (origin.go):
// AccountOrigin of the record's request if the event asks for one, 0 if it
// does not (an event written before origins existed), if the record has no
// client id, or if a live account has that origin already (two requests
// that hash alike: the second account goes without).
func registerOrigin(kv KV, rec eventlog.Record, ev *RegisterEvent) (uint64, error) {
	if !ev.Origin || rec.ClientID == "" {
		return 0, nil
	}
	origin := AccountOrigin(rec.ClientID, rec.Seq)
	if _, taken, err := kv.Get(originKey(origin)); err != nil || taken {
		return 0, err
	}
	return origin, nil
}

func applySend(kv KV, rec eventlog.Record, ev *SendEvent) (Result, error) {
	if err := checkBody(ev.Body); err != nil {
		return Result{}, err
	}
	if ev.MessageID == 0 {
		return Result{}, fmt.Errorf("%w: message id 0", ErrInvalidArgument)
	}
	from, err := resolveUser(kv, ev.FromUID, ev.FromOrigin)
	if err != nil {
		return Result{}, err
	}
	to, err := resolveUser(kv, ev.ToUID, ev.ToOrigin)
	if err != nil {
		return Result{}, err
	}
	// The event's id, or the next free one if it is taken (msgid.go): the
	// Result tells the sender the id stored.
	id, err := placeMessage(kv, ev.MessageID)
	if err != nil {
		return Result{}, err
	}
	if to.Unread >= MaxUnread {
		return Result{}, &QueueFullError{To: to.Name, Limit: MaxUnread}
	}
	off := uint64(rec.Offset)
	m := msgRec{ID: id, From: from.ID, FromName: from.Name, To: to.ID, ToName: to.Name,
		Body: ev.Body, Time: rec.Time, Offset: off, SenderView: true, RecipientView: true}
	if err := putRec(kv, msgKey(m.ID), &m); err != nil {
		return Result{}, err
	}
	idv := u64(nil, m.ID)
	for _, k := range [][]byte{historyKey(from.ID, off), historyKey(to.ID, off), queueKey(to.ID, off)} {
		if err := kv.Set(k, idv); err != nil {
			return Result{}, err
		}
	}
	to.History++
	to.Unread++
	if from.ID != to.ID {
		from.History++
		if err := putRec(kv, userKey(from.ID), &from); err != nil {
			return Result{}, err
		}
	}
	if err := putRec(kv, userKey(to.ID), &to); err != nil {
		return Result{}, err
	}
	return Result{MessageID: m.ID, Time: m.Time}, nil
}

func applyDeliver(kv KV, ev *DeliverEvent) (Result, error) {
	if err := checkIDs(ev.MessageIDs); err != nil {
		return Result{}, err
	}
	u, err := resolveUser(kv, ev.UID, ev.Origin)
	if err != nil {
		return Result{}, err
	}
	// Ids no longer queued for u (delivered or deleted since the primary
	// decided) are skipped: delivering twice is a no-op, not an error.
	var done []uint64
	for _, id := range sortedIDs(ev.MessageIDs) {
		m, ok, err := getMsg(kv, id)
		if err != nil {
			return Result{}, err
		}
		if !ok || m.To != u.ID || !m.RecipientView || m.Delivered {
			continue
		}
		if err := kv.Delete(queueKey(u.ID, m.Offset)); err != nil {
			return Result{}, err
		}
		m.Delivered = true
		u.Unread--
		if err := putRec(kv, msgKey(id), &m); err != nil {
			return Result{}, err
		}
		done = append(done, id)
	}
	if err := putRec(kv, userKey(u.ID), &u); err != nil {
		return Result{}, err
	}
	return Result{IDs: done}, nil
}

// ownView reports whether uid still has a view of m, and otherwise which
// error deleting it is.
func ownView(m msgRec, uid uint64) error {
	if m.From != uid && m.To != uid {
		return fmt.Errorf("%w: message %d", ErrForbidden, m.ID)
	}
	if (m.From == uid && m.SenderView) || (m.To == uid && m.RecipientView) {
		return nil
	}
	return fmt.Errorf("%w: message %d", ErrNotFound, m.ID)
}

func applyDeleteMessages(kv KV, ev *DeleteMessagesEvent) (Result, error) {
	if err := checkIDs(ev.IDs); err != nil {
		return Result{}, err
	}
	u, err := resolveUser(kv, ev.UID, ev.Origin)
	if err != nil {
		return Result{}, err
	}
	ids := sortedIDs(ev.IDs)
	msgs := make([]msgRec, 0, len(ids))
	// Validate all before deleting any: the command deletes all or none.
	for _, id := range ids {
		m, ok, err := getMsg(kv, id)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			return Result{}, fmt.Errorf("%w: message %d", ErrNotFound, id)
		}
		if err := ownView(m, u.ID); err != nil {
			return Result{}, err
		}
		msgs = append(msgs, m)
	}
	for i := range msgs {
		if err := removeView(kv, &msgs[i], &u); err != nil {
			return Result{}, err
		}
	}
	if err := putRec(kv, userKey(u.ID), &u); err != nil {
		return Result{}, err
	}
	return Result{IDs: ids}, nil
}

// removeView removes u's view of m (both views if u sent it to itself),
// with its history and queue entries, and drops m when no view remains.
// The caller writes u.
func removeView(kv KV, m *msgRec, u *userRec) error {
	if m.To == u.ID && m.RecipientView {
		m.RecipientView = false
		if !m.Delivered {
			if err := kv.Delete(queueKey(u.ID, m.Offset)); err != nil {
				return err
			}
			u.Unread--
		}
	}
	if m.From == u.ID {
		m.SenderView = false
	}
	if err := kv.Delete(historyKey(u.ID, m.Offset)); err != nil {
		return err
	}
	u.History--
	if !m.SenderView && !m.RecipientView {
		return kv.Delete(msgKey(m.ID))
	}
	return putRec(kv, msgKey(m.ID), m)
}

// applyDeleteAccount removes the account and its name at once and queues
// the removal of its views (history and queue entries), which purgeStep
// carries out a bounded amount per record: an account's history is
// unbounded, and one record's transaction must stay small.
func applyDeleteAccount(kv KV, ev *DeleteAccountEvent) (Result, error) {
	u, err := resolveUser(kv, ev.UID, ev.Origin)
	if err != nil {
		return Result{}, err
	}
	var queue []uint64
	if _, err := getRec(kv, keyPurge, &queue); err != nil {
		return Result{}, err
	}
	if err := putRec(kv, keyPurge, append(queue, u.ID)); err != nil {
		return Result{}, err
	}
	if err := kv.Delete(nameKey(u.Name)); err != nil {
		return Result{}, err
	}
	if err := kv.Delete(userKey(u.ID)); err != nil {
		return Result{}, err
	}
	if u.Origin != 0 {
		if err := kv.Delete(originKey(u.Origin)); err != nil {
			return Result{}, err
		}
	}
	return Result{UserID: u.ID}, nil
}

// purgeStep removes up to budget views of deleted accounts, oldest deletion
// first. It runs after every record, so the work done by a record depends
// only on the log: replicas stay identical.
func purgeStep(kv KV, budget int) error {
	var queue []uint64
	found, err := getRec(kv, keyPurge, &queue)
	if err != nil || !found {
		return err
	}
	for len(queue) > 0 && budget > 0 {
		uid := queue[0]
		var ids []uint64
		err := kv.Scan(historyPrefix(uid), nil, func(_, v []byte) (bool, error) {
			id, err := decodeU64(v)
			ids = append(ids, id)
			return len(ids) < budget, err
		})
		if err != nil {
			return err
		}
		gone := userRec{ID: uid} // counts of a deleted account do not matter
		for _, id := range ids {
			m, ok, err := getMsg(kv, id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: history of deleted user %d names missing message %d", ErrInconsistent, uid, id)
			}
			if err := removeView(kv, &m, &gone); err != nil {
				return err
			}
		}
		budget -= len(ids)
		if budget > 0 { // the history is empty: this account is done
			queue = queue[1:]
		}
	}
	if len(queue) == 0 {
		return kv.Delete(keyPurge)
	}
	return putRec(kv, keyPurge, queue)
}
