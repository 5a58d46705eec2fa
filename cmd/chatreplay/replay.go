package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/shell"
)

// readBatchBytes bounds one Log.Read, and so the records held in memory.
const readBatchBytes = 1 << 20

// applyBatch bounds the records folded in one state transaction: enough to
// amortize a commit, and well within Badger's transaction size limit (a
// batch over it fails and is applied again in halves).
const applyBatch = 256

// logReader is what replay needs of the event log.
type logReader interface {
	Read(from eventlog.Offset, maxBytes int) ([]eventlog.Record, error)
	First() eventlog.Offset
	Last() eventlog.Offset
}

// replay opens the log, walks it and prints what opts asks for.
func replay(ctx context.Context, opts options, stdout, stderr io.Writer) (err error) {
	l, err := openLog(opts.dataDir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the log: %w", cerr)
		}
	}()

	end := l.Last()
	if opts.state && opts.to > end {
		// The state "as of --to" does not exist yet: printing the state at
		// the log's end instead would pass for it.
		return fmt.Errorf("--state --to %d: the log in %s ends at offset %d", opts.to, opts.dataDir, end)
	}
	if opts.to != 0 && opts.to < end {
		end = opts.to
	}
	first := l.First()
	// base is the snapshot the fold starts from when the log is compacted
	// (nil: the fold starts at offset 1, or there is none).
	var base *shell.SnapshotFile
	if first > 1 {
		var note string
		if base, note, err = pickSnapshot(opts, first, l.Last(), end); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "chatreplay: "+note)
	}
	var f *folder
	if first == 1 || base != nil {
		var (
			store      chat.Store
			closeStore func() error
		)
		if store, closeStore, err = newScratchStore(opts); err != nil {
			return err
		}
		defer func() {
			if cerr := closeStore(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		f = &folder{st: chat.NewState(store), user: opts.user, uids: make(map[uint64]bool)}
		if base != nil {
			if err := f.restore(*base); err != nil {
				return err
			}
		}
	}

	w := bufio.NewWriter(stdout)
	defer func() {
		// Flush also on error: what came before a corrupt record is output.
		if ferr := w.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("write output: %w", ferr)
		}
	}()
	r := &replayer{opts: opts, folder: f, out: &printer{w: w, json: opts.json}}
	from := first
	if base != nil {
		r.foldFrom = base.Offset + 1
		if opts.state || opts.user != "" {
			// Nothing before the snapshot is printed.
			from = r.foldFrom
		}
	}
	if err := walk(ctx, l, from, end, readBatchBytes, r.batch); err != nil {
		return err
	}
	if f != nil {
		if err := f.flush(); err != nil {
			return err
		}
	}
	if opts.state {
		return printState(r.out, f.st, opts.user)
	}
	return nil
}

// snapshotSubdir is where a replica's data directory keeps the snapshots
// of its chat state (chatd's <data>/snapshots, written by replica/shell).
const snapshotSubdir = "snapshots"

// pickSnapshot chooses, for a log compacted up to first-1, the snapshot the
// fold starts from: one the log continues (its offset at or after first-1,
// at or before last), at or before end; for --state the newest such (the
// least to replay), else the oldest (the fewest events printed without
// names). It returns the note for stderr that says where the log starts and
// where the snapshot is, and an error when --state or --user cannot be
// answered: no snapshot, or --to before the earliest one.
func pickSnapshot(opts options, first, last, end eventlog.Offset) (*shell.SnapshotFile, string, error) {
	dir := ""
	if logPath(opts.dataDir) != opts.dataDir {
		dir = filepath.Join(opts.dataDir, snapshotSubdir)
	}
	var usable []shell.SnapshotFile
	if dir != "" {
		all, err := shell.Snapshots(dir)
		if err != nil {
			return nil, "", err
		}
		for _, f := range all {
			if f.Offset+1 >= first && f.Offset <= last {
				usable = append(usable, f)
			}
		}
	}
	compacted := fmt.Sprintf("the log in %s is compacted: it starts at offset %d", opts.dataDir, first)
	if len(usable) == 0 {
		where := "no snapshot of the chat state is kept beside it"
		if dir != "" {
			where = "no snapshot of the chat state that the log continues is kept in " + dir
		}
		if opts.state || opts.user != "" {
			return nil, "", fmt.Errorf("%s and %s: --state and --user need a snapshot, or the log from offset 1", compacted, where)
		}
		return nil, fmt.Sprintf("warning: %s and %s: printing events without names or results", compacted, where), nil
	}
	if end < usable[0].Offset {
		if opts.state {
			return nil, "", fmt.Errorf("--state --to %d: %s and its earliest snapshot covers offset %d (%s): the state is known from offset %d on",
				end, compacted, usable[0].Offset, usable[0].Dir, usable[0].Offset)
		}
		if opts.user != "" {
			return nil, "", fmt.Errorf("--user with --to %d: %s and its earliest snapshot covers offset %d (%s): events are attributed to accounts from offset %d on",
				end, compacted, usable[0].Offset, usable[0].Dir, usable[0].Offset+1)
		}
		return nil, fmt.Sprintf("warning: %s and the state before it is in the snapshot at offset %d (%s), after --to: printing events without names or results",
			compacted, usable[0].Offset, usable[0].Dir), nil
	}
	pick := usable[0]
	if opts.state {
		for _, f := range usable {
			if f.Offset <= end {
				pick = f
			}
		}
	}
	taken := pick.Taken.UTC().Format(time.RFC3339)
	switch {
	case opts.state:
		return &pick, fmt.Sprintf("%s; the state is the snapshot at offset %d (%s, taken %s) and the %d records after it",
			compacted, pick.Offset, pick.Dir, taken, end-pick.Offset), nil
	case opts.user != "":
		return &pick, fmt.Sprintf("%s; the state up to offset %d is in the snapshot %s (taken %s): --user prints the events after it",
			compacted, pick.Offset, pick.Dir, taken), nil
	case pick.Offset < first:
		return &pick, fmt.Sprintf("%s; the state before it is in the snapshot %s (offset %d, taken %s)",
			compacted, pick.Dir, pick.Offset, taken), nil
	}
	return &pick, fmt.Sprintf("%s; the state up to offset %d is in the snapshot %s (taken %s): events %d-%d are printed without names or results",
		compacted, pick.Offset, pick.Dir, taken, first, pick.Offset), nil
}

// logSubdir is where a replica's data directory keeps its event log (chatd
// keeps the chat state next to it, in "state").
const logSubdir = "log"

// logPath returns the event log's directory for --data dir: dir/log when dir
// is a replica's data directory, else dir itself (a bare log directory, as
// replicas wrote them before the state moved to a database of its own).
func logPath(dir string) string {
	sub := filepath.Join(dir, logSubdir)
	if fi, err := os.Stat(sub); err == nil && fi.IsDir() {
		return sub
	}
	return dir
}

// openLog opens dir's event log read-only, turning the common failures
// into one clear sentence.
func openLog(dir string) (*eventlog.BadgerLog, error) {
	l, err := eventlog.OpenBadger(logPath(dir), eventlog.BadgerOptions{ReadOnly: true})
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, eventlog.ErrLocked):
		return nil, fmt.Errorf("%s is in use by a running replica, and its log cannot be read consistently while it is written: "+
			"stop the replica, or copy the directory (cp -a) and replay the copy", dir)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no data directory at %s", dir)
	}
	return nil, fmt.Errorf("cannot read the data directory %s: %w", dir, err)
}

// walk calls fn with the records in [from, to], in offset order and in
// batches of about maxBytes. A corrupt record stops it with the *eventlog.CorruptError, but
// only after fn has had every record before it.
func walk(ctx context.Context, l logReader, from, to eventlog.Offset, maxBytes int, fn func([]eventlog.Record) error) error {
	// corruptAt is the offset of a corrupt record ahead: records before it
	// are read one at a time, since a batch that reaches it fails whole.
	var corruptAt eventlog.Offset
	for next := from; next <= to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := maxBytes
		if next < corruptAt {
			batch = 1 // Read returns at least one record
		}
		recs, err := l.Read(next, batch)
		if ce := (*eventlog.CorruptError)(nil); errors.As(err, &ce) && ce.Offset > next {
			corruptAt = ce.Offset
			continue
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return fmt.Errorf("read from %d: the log ended before offset %d", next, to)
		}
		if i := slices.IndexFunc(recs, func(r eventlog.Record) bool { return r.Offset > to }); i >= 0 {
			recs = recs[:i]
		}
		if err := fn(recs); err != nil {
			return err
		}
		next = recs[len(recs)-1].Offset + 1
	}
	return nil
}

// replayer decides, record by record, what to fold and what to print.
type replayer struct {
	opts   options
	folder *folder // nil: the log is compacted and no snapshot is used, nothing is folded
	// foldFrom is the first record folded (the records before it are in
	// the snapshot the fold starts from, or compacted): 0 or 1 folds all.
	foldFrom eventlog.Offset
	out      *printer
}

// batch handles one batch of records read from the log.
func (r *replayer) batch(recs []eventlog.Record) error {
	for _, rec := range recs {
		if err := r.record(rec); err != nil {
			return err
		}
	}
	if r.folder != nil {
		return r.folder.flush()
	}
	return nil
}

func (r *replayer) record(rec eventlog.Record) error {
	var ev chat.Event
	if strings.HasPrefix(rec.Type, chat.TypePrefix) {
		var err error
		if ev, err = chat.DecodeEvent(rec.Type, rec.Data); err != nil {
			return fmt.Errorf("decode offset %d: %w", rec.Offset, err)
		}
	}
	f := r.folder
	if rec.Offset < r.foldFrom {
		f = nil // already in the snapshot: printed without names or results
	}
	show := !r.opts.state && rec.Offset >= r.opts.from &&
		(len(r.opts.types) == 0 || slices.Contains(r.opts.types, rec.Type)) &&
		(f == nil || r.involvesUser(ev))
	if f == nil {
		if show {
			return r.out.event(rec, eventFields(ev, outcome{}, nil))
		}
		return nil
	}
	// A registration of the --user name is applied alone, whether shown
	// or not, to learn the account id it created.
	learn := r.opts.user != "" && isRegisterOf(ev, r.opts.user)
	if !show && !learn {
		f.pending = append(f.pending, rec)
		if len(f.pending) >= applyBatch {
			return f.flush()
		}
		return nil
	}
	names, err := f.names(ev)
	if err != nil {
		return err
	}
	res, err := f.applyOne(rec, ev)
	if err != nil {
		return err
	}
	if !show {
		return nil
	}
	return r.out.event(rec, eventFields(ev, res, names))
}

// involvesUser reports whether ev passes the --user filter.
func (r *replayer) involvesUser(ev chat.Event) bool {
	if r.opts.user == "" {
		return true
	}
	uids := r.folder.uids
	switch ev := ev.(type) {
	case *chat.RegisterEvent:
		return ev.Name == r.opts.user
	case *chat.SendEvent:
		return uids[ev.FromUID] || uids[ev.ToUID]
	case *chat.DeliverEvent:
		return uids[ev.UID]
	case *chat.DeleteMessagesEvent:
		return uids[ev.UID]
	case *chat.DeleteAccountEvent:
		return uids[ev.UID]
	}
	return false // not a chat event: involves no user
}

func isRegisterOf(ev chat.Event, name string) bool {
	reg, ok := ev.(*chat.RegisterEvent)
	return ok && reg.Name == name
}
