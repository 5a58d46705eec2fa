package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
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

// outcome is what applying one record did, for printing.
type outcome struct {
	known bool // false: the record was not folded (compacted log)
	// result is "ok", the error code applying recorded, "duplicate" (the
	// dedup table skipped it) or "skipped" (a client id too long to
	// deduplicate, which Apply ignores); "" for a record without client.
	result string
	errMsg string
	uid    uint64 // the account a register created
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
	res := outcome{known: true}
	chatClient := ev != nil && rec.ClientID != ""
	if chatClient && len(rec.ClientID) > chat.MaxClientIDLen {
		res.result = "skipped"
		chatClient = false
	}
	if chatClient {
		_, dup, err := f.st.Result(rec.ClientID, rec.Seq)
		if err != nil {
			return outcome{}, err
		}
		if dup {
			res.result = "duplicate"
			chatClient = false
		}
	}
	if err := f.st.Apply([]eventlog.Record{rec}); err != nil {
		return outcome{}, err
	}
	if !chatClient {
		return res, nil
	}
	r, ok, err := f.st.Result(rec.ClientID, rec.Seq)
	if err != nil {
		return outcome{}, err
	}
	if !ok {
		return outcome{}, fmt.Errorf("offset %d: applied, but no result stored for %q/%d", rec.Offset, rec.ClientID, rec.Seq)
	}
	res.result, res.errMsg = "ok", r.Message
	if r.Code != "" {
		res.result = r.Code
	}
	if reg, isReg := ev.(*chat.RegisterEvent); isReg && r.Code == "" {
		res.uid = r.UserID
		if f.user != "" && reg.Name == f.user {
			f.uids[r.UserID] = true
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
