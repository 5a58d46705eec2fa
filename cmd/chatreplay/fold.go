package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/shell"
)

// folder applies the log to a scratch chat state, as the server does.
// Records that are not printed are applied in batches (pending), one
// transaction per read batch; a printed record is applied alone, so that
// the state just before and just after it can be asked for names and for
// its result.
type folder struct {
	st *chat.State
	// pending are records read but not applied yet, in offset order,
	// following st.Applied().
	pending []eventlog.Record
	// user is the --user name ("" for none), and uids the ids of every
	// account that was registered under it so far.
	user string
	uids map[uint64]bool
}

// outcome is what applying one record did, for printing. It comes from
// the apply itself (chat.State.ApplyWithResults), never from looking the
// request up afterwards: the dedup table may have evicted or never stored
// its result.
type outcome struct {
	known bool // false: the record was not folded (compacted log)
	// result is "ok", the error code applying recorded, "duplicate" (the
	// dedup table skipped it: applied already), "expired_request"
	// (skipped, never applied: a live request where the dedup table had
	// forgotten what was applied) or "skipped" (a client id too long to
	// deduplicate, which Apply ignores); "" for a record without client.
	result string
	errMsg string
	uid    uint64 // the account a register created
	// storedID is the id a send's message was stored under, when not its
	// event's (that id was taken: the id was probed).
	storedID uint64
	// dedup says how the dedup table judged a re-submission it could not
	// vouch for: "unknown" (applied, though it may have been before) or
	// "message_id" (a duplicate by its message id); "" otherwise.
	dedup string
}

// restore starts the fold from a snapshot of the state (verified first),
// and learns the --user account it holds.
func (f *folder) restore(snap shell.SnapshotFile) error {
	r, err := snap.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	if err := f.st.RestoreSnapshot(r); err != nil {
		return fmt.Errorf("load the snapshot in %s: %w", snap.Dir, err)
	}
	if got := f.st.Applied(); got != snap.Offset {
		return fmt.Errorf("load the snapshot in %s: it covers offset %d, its meta says %d", snap.Dir, got, snap.Offset)
	}
	if f.user != "" {
		u, ok, err := f.st.User(f.user)
		if err != nil {
			return err
		}
		if ok {
			f.uids[u.ID] = true
		}
	}
	return nil
}

// flush applies the pending records.
func (f *folder) flush() error {
	if len(f.pending) == 0 {
		return nil
	}
	err := f.st.Apply(f.pending)
	f.pending = f.pending[:0]
	return err
}

// names returns the current names of the user ids ev refers to. A deleted
// account has no name.
func (f *folder) names(ev chat.Event) (map[uint64]string, error) {
	if err := f.flush(); err != nil {
		return nil, err
	}
	var uids []uint64
	switch ev := ev.(type) {
	case *chat.SendEvent:
		uids = []uint64{ev.FromUID, ev.ToUID}
	case *chat.DeliverEvent:
		uids = []uint64{ev.UID}
	case *chat.DeleteMessagesEvent:
		uids = []uint64{ev.UID}
	case *chat.DeleteAccountEvent:
		uids = []uint64{ev.UID}
	}
	names := make(map[uint64]string, len(uids))
	for _, uid := range uids {
		u, ok, err := f.st.UserByID(uid)
		if err != nil {
			return nil, err
		}
		if ok {
			names[uid] = u.Name
		}
	}
	return names, nil
}

// applyOne applies rec (after the pending records) and reports its outcome.
func (f *folder) applyOne(rec eventlog.Record, ev chat.Event) (outcome, error) {
	if err := f.flush(); err != nil {
		return outcome{}, err
	}
	results, err := f.st.ApplyWithResults([]eventlog.Record{rec})
	if err != nil {
		return outcome{}, err
	}
	res := outcome{known: true}
	if ev == nil || rec.ClientID == "" {
		return res, nil
	}
	if len(results) != 1 || results[0].Offset != rec.Offset {
		return outcome{}, fmt.Errorf("offset %d: applied, but no outcome reported for %q/%d", rec.Offset, rec.ClientID, rec.Seq)
	}
	r := results[0]
	switch r.Outcome {
	case chat.OutcomeApplied:
		res.result = "ok"
	case chat.OutcomeRejected:
		res.result, res.errMsg = r.Result.Code, r.Result.Message
	case chat.OutcomeDuplicate:
		res.result = "duplicate"
		if r.Unknown {
			res.dedup = "message_id"
		}
	case chat.OutcomeExpired:
		res.result, res.errMsg = "expired_request", "not applied: below the client's dedup window, where applied requests are no longer known"
	case chat.OutcomeSkipped:
		res.result = "skipped"
	default:
		return outcome{}, fmt.Errorf("offset %d: unknown outcome %v", rec.Offset, r.Outcome)
	}
	if r.Unknown && (r.Outcome == chat.OutcomeApplied || r.Outcome == chat.OutcomeRejected) {
		res.dedup = "unknown"
	}
	switch ev := ev.(type) {
	case *chat.RegisterEvent:
		if r.Outcome == chat.OutcomeApplied {
			res.uid = r.Result.UserID
			if f.user != "" && ev.Name == f.user {
				f.uids[r.Result.UserID] = true
			}
		}
	case *chat.SendEvent:
		if id := r.Result.MessageID; r.Outcome == chat.OutcomeApplied && id != ev.MessageID {
			res.storedID = id
		}
	}
	return res, nil
}

// newScratchStore returns the store to fold into and the function that
// releases it: a MemStore with --mem, else a Badger database in a new
// temporary directory, removed again by the release function.
func newScratchStore(opts options) (chat.Store, func() error, error) {
	if opts.mem {
		return chat.NewMemStore(), func() error { return nil }, nil
	}
	dir, err := os.MkdirTemp(opts.tmpDir, "chatreplay-")
	if err != nil {
		return nil, nil, fmt.Errorf("create scratch directory: %w", err)
	}
	const memTable = 8 << 20
	// Scratch data: no fsync, small memtables and caches, so memory stays
	// small and bounded whatever the log's length.
	db, err := badger.Open(badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(false).
		WithMemTableSize(memTable).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(4 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(32 << 20).
		WithValueThreshold(memTable * 15 / 100 / 2).
		WithNumCompactors(2))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("open scratch state in %s: %w", dir, err)
	}
	release := func() error {
		return errors.Join(db.Close(), os.RemoveAll(dir))
	}
	return chatdb.New(db), release, nil
}
