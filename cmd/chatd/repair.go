package main

// Start-up verification and repair of a data directory (CONTRACT.md: a
// corrupt data directory is one clear line on stderr and a non-zero exit,
// never an empty database served; DESIGN.md section 3: a file whose bytes
// changed, a disk replaced by an empty one).
//
// What can go wrong with the files, and what catches it:
//
//   - Badger's open deletes every table file its MANIFEST does not reference
//     (badger v4.9.6 levels.go revertToManifest, even read-only), so a
//     truncated or lost MANIFEST destroys the log at the first open and
//     leaves a valid, empty database. Before the log is opened, its files
//     are put in a quarantine beside it (quarantineLog: tables hardlinked,
//     the files Badger rewrites in place copied), removed once the checks
//     pass and kept when they fail.
//   - The witness file, <data>/replica.json, outside Badger and written
//     atomically, remembers the directory's identity and an offset that every
//     replica holds durably and that no protocol action truncates (the
//     shell's Status.Stable). A log whose identity is not the witness's, or
//     that ends below that offset, lost records it had (checkLog).
//   - A log that had table files but opens with nothing at all in it (not
//     even its identity) lost its MANIFEST, witness or not (checkLog).
//   - A chat state that applied more than the log holds, with no rollback to
//     explain it: the log lost records (checkApplied; the shell's ErrLogLost
//     is the same check, this is its one line).
//   - The state's table checksums are verified at open, synchronously: the
//     state is derived from the log, so one that fails (or cannot be opened
//     or loaded) is moved aside and rebuilt from the log (openState), or,
//     once the log is compacted past it, restored from the newest local
//     snapshot the log continues and replayed from there (restoreBehindLog;
//     with none, the directory is refused as damaged). The
//     log's are verified in the background once the replica runs
//     (scrubLog): a full read of the log at every start would delay it in
//     proportion to the whole history.
//   - A record that fails its checksum at run time stops the replication
//     core (the shell's role "failed"); the witness records it (observe).
//
// A damaged log is refused, with one line naming what is missing and where
// its files are kept (<data>/damaged-<time>), and recorded in the witness so
// that later starts refuse at once. With --repair, the log and the state are
// moved aside into that directory and the replica starts empty: a new
// identity, so a new member that fetches everything from the cluster and
// never leads on its former self's in-sync membership (docs/replication.md,
// "Identities").

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/eventlog/badgerdb"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/shell"
)

const (
	// witnessName is the witness file in the data directory.
	witnessName = "replica.json"
	// quarantineName is the directory beside the log that holds its files
	// while the log is opened and checked.
	quarantineName = "log.quarantine"
	// lockName is the data directory's lock: one chatd per directory, held
	// for the life of the process (Badger locks only its own databases,
	// after the quarantine and the witness are touched).
	lockName = "chatd.lock"
	// damagedPrefix starts the directories damaged files are kept in.
	damagedPrefix = "damaged-"
	// rollbackMeta is replica/shell's rollbackKey: a rollback of the state
	// still due (after a fork), which explains a state ahead of the log.
	rollbackMeta = "shell.rollback"
	// witnessEvery is how often the witness is refreshed while the replica
	// runs (only when what it holds changed).
	witnessEvery = 2 * time.Second
)

// witness is the content of the witness file.
type witness struct {
	Replica uint32 `json:"replica"`
	// Identity is the log's identity (replica.Identity.String()).
	Identity string `json:"identity"`
	// Stable is an offset the log held durably, and which no protocol
	// action truncates: the log must end at or after it.
	Stable uint64 `json:"stable"`
	// Damaged, when set, says why the log must not be used again: a check
	// failed at start, or the replication core stopped at run time on a
	// record it could not read. A start refuses until --repair.
	Damaged string `json:"damaged,omitempty"`
	// Kept is where the damaged files were kept, when they were.
	Kept    string    `json:"kept,omitempty"`
	Updated time.Time `json:"updated"`
}

// same reports whether w and o hold the same facts (Updated aside).
func (w witness) same(o witness) bool {
	w.Updated, o.Updated = time.Time{}, time.Time{}
	return w == o
}

func readWitness(dataDir string) (witness, bool, error) {
	path := filepath.Join(dataDir, witnessName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return witness{}, false, nil
	}
	if err != nil {
		return witness{}, false, err
	}
	var w witness
	if err := json.Unmarshal(b, &w); err != nil {
		return witness{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return w, true, nil
}

func writeWitness(dataDir string, w witness) error {
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dataDir, witnessName), append(b, '\n')); err != nil {
		return fmt.Errorf("write the witness file: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with b: a temporary file beside it,
// fsynced, renamed over it, and the directory fsynced, so that a crash
// leaves the old content or the new, never a mix or nothing.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeStaleTemps removes the temporary files of writes a crash
// interrupted.
func removeStaleTemps(dataDir string) {
	temps, _ := filepath.Glob(filepath.Join(dataDir, "."+witnessName+".tmp-*"))
	for _, t := range temps {
		os.Remove(t)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// lockDataDir takes the data directory's lock, or says who holds it.
func lockDataDir(dataDir string) (unlock func(), err error) {
	path := filepath.Join(dataDir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another chatd (%s is locked)", dataDir, path)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dataDir, err)
	}
	return func() { f.Close() }, nil
}

// damagedError is a data directory refused at start: one line naming what
// is wrong, where its files are kept, and what to do.
type damagedError struct {
	dataDir string
	reason  string
	kept    string // "" if nothing was kept
	alone   bool   // a one-replica cluster: no other copy to fetch
}

func (e *damagedError) Error() string {
	s := fmt.Sprintf("data directory %s is damaged: %s", e.dataDir, e.reason)
	if e.kept != "" {
		s += "; its files are kept in " + e.kept
	}
	if e.alone {
		return s + "; this one-replica cluster has no other copy of it: restore the directory from a backup, " +
			"or restart with --repair to start it empty (its records are lost)"
	}
	return s + "; restart with --repair to fetch everything again from the cluster as a new member"
}

// oneLine flattens an error's text onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// checkedData is a data directory that passed its checks (or was
// repaired), open.
type checkedData struct {
	log     *eventlog.BadgerLog
	stateDB *chatdb.DB
	state   *chat.State
	witness *witnessKeeper
	// unlock releases the data directory's lock; after both databases are
	// closed.
	unlock func()
}

// openChecked opens the log and the state of cfg.dataDir (which exists),
// checks them (see the top of this file), and refuses a damaged log with a
// *damagedError, or repairs it (cfg.repair). Other errors (a directory in
// use, an I/O error) are returned as they are.
func openChecked(cfg config, logger *slog.Logger, observeSync func(time.Duration)) (d *checkedData, err error) {
	dataDir := cfg.dataDir
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	removeStaleTemps(dataDir)
	w, hasW, werr := readWitness(dataDir)
	if werr != nil {
		// Written atomically, so damaged by the disk: the log's own checks
		// still run, without what it remembered.
		logger.Warn("the witness file is unreadable; checking the data directory without it", "err", werr)
		w, hasW = witness{}, false
	}
	if hasW && w.Replica != cfg.id {
		return nil, fmt.Errorf("data directory %s belongs to replica %d (its %s says so), this is replica %d: start it with --id %d",
			dataDir, w.Replica, witnessName, cfg.id, w.Replica)
	}
	// What Badger logs while the log is opened is held back: an open that
	// fails is said once, in the refusal's one line; one that succeeds
	// logs it then.
	badgerLog := newHeldHandler(logger.With("component", "badger").Handler())
	opts := eventlog.BadgerOptions{Logger: slog.New(badgerLog), ObserveSync: observeSync}
	defer func() { badgerLog.release(err == nil) }()
	o := &opened{}
	var reason, kept, quarantine string
	if hasW && w.Damaged != "" {
		// Found damaged before (a check, or the core at run time): the log
		// is not opened again.
		reason, kept = w.Damaged, w.Kept
	} else {
		reason, quarantine, err = o.openAndCheck(dataDir, w, hasW, opts, logger)
		if err != nil {
			o.close()
			removeQuarantine(quarantine, logger)
			return nil, err
		}
	}
	if reason == "" {
		removeQuarantine(quarantine, logger)
		if cfg.repair {
			logger.Info("--repair: the data directory passed its checks; nothing to repair")
		}
		if d, err = o.finish(cfg, w, logger); err == nil {
			d.unlock = unlock
		}
		return d, err
	}
	o.close()
	if !cfg.repair {
		if kept == "" && quarantine != "" {
			if kept, err = keepQuarantine(dataDir, quarantine); err != nil {
				logger.Warn("cannot keep the damaged log's files aside; they stay in the quarantine", "quarantine", quarantine, "err", err)
				kept = quarantine
			}
		}
		w.Replica, w.Damaged, w.Kept, w.Updated = cfg.id, reason, kept, time.Now().UTC()
		if err := writeWitness(dataDir, w); err != nil {
			logger.Warn("cannot record the damage in the witness file", "err", err)
		}
		return nil, &damagedError{dataDir: dataDir, reason: reason, kept: kept, alone: len(cfg.peers) == 1}
	}
	// --repair. The damage is recorded first, so that a repair interrupted
	// by a crash is not mistaken for a healthy empty directory.
	w.Replica, w.Damaged, w.Kept, w.Updated = cfg.id, reason, kept, time.Now().UTC()
	if err := writeWitness(dataDir, w); err != nil {
		return nil, err
	}
	if kept, err = moveAside(dataDir, quarantine, kept); err != nil {
		return nil, fmt.Errorf("repair data directory %s: %w", dataDir, err)
	}
	msg := "repairing the data directory: its log and state are moved aside; starting empty as a new member that fetches everything from the cluster"
	if len(cfg.peers) == 1 {
		msg = "repairing the data directory: its log and state are moved aside; starting empty (a one-replica cluster: its records are lost)"
	}
	logger.Warn(msg, "reason", reason, "kept", kept)
	o = &opened{}
	if o.log, err = eventlog.OpenBadger(filepath.Join(dataDir, logDir), opts); err != nil {
		return nil, fmt.Errorf("open data directory %s: %w", dataDir, err)
	}
	if _, err = o.openState(dataDir, logger); err != nil {
		o.close()
		return nil, err
	}
	if d, err = o.finish(cfg, witness{}, logger); err == nil {
		d.unlock = unlock
	}
	return d, err
}

// opened holds what openChecked opened so far.
type opened struct {
	log     *eventlog.BadgerLog
	stateDB *chatdb.DB
	state   *chat.State
}

func (o *opened) close() {
	if o.stateDB != nil {
		o.stateDB.Close()
		o.stateDB = nil
	}
	if o.log != nil {
		o.log.Close()
		o.log = nil
	}
}

// finish ensures the directory's identity and writes the witness for it,
// keeping the stable offset of w if it is about the same identity.
func (o *opened) finish(cfg config, w witness, logger *slog.Logger) (*checkedData, error) {
	id, created, err := replica.EnsureIdentity(o.log, replica.NodeID(cfg.id), crand.Reader)
	if err != nil {
		o.close()
		return nil, fmt.Errorf("data directory %s: %w", cfg.dataDir, err)
	}
	if created {
		logger.Info("created the data directory's identity", "identity", id.String(), "legacy", id.Legacy)
	}
	nw := witness{Replica: cfg.id, Identity: id.String(), Updated: time.Now().UTC()}
	if w.Identity == nw.Identity {
		nw.Stable = w.Stable
	}
	if err := writeWitness(cfg.dataDir, nw); err != nil {
		o.close()
		return nil, err
	}
	return &checkedData{log: o.log, stateDB: o.stateDB, state: o.state,
		witness: &witnessKeeper{dataDir: cfg.dataDir, w: nw, logger: logger}}, nil
}

// openAndCheck opens the log behind a quarantine and checks it, then opens
// the state. reason says what is damaged ("" if nothing); err is a failure
// that says nothing about damage (the directory in use, an I/O error).
func (o *opened) openAndCheck(dataDir string, w witness, hasW bool, opts eventlog.BadgerOptions, logger *slog.Logger) (reason, quarantine string, err error) {
	quarantine, tables, err := quarantineLog(dataDir)
	if err != nil {
		return "", quarantine, err
	}
	o.log, err = eventlog.OpenBadger(filepath.Join(dataDir, logDir), opts)
	if errors.Is(err, eventlog.ErrLocked) {
		return "", quarantine, fmt.Errorf("open data directory %s: %w", dataDir, err)
	}
	if err != nil {
		return "its log cannot be opened (" + oneLine(err) + ")", quarantine, nil
	}
	if reason = checkLog(o.log, w, hasW, tables); reason != "" {
		return reason, quarantine, nil
	}
	rebuilt, err := o.openState(dataDir, logger)
	if err != nil {
		return "", quarantine, err
	}
	if reason = o.restoreBehindLog(dataDir, rebuilt, logger); reason != "" {
		return reason, quarantine, nil
	}
	return checkApplied(o.log, o.state.Applied(), w), quarantine, nil
}

// restoreBehindLog brings a chat state that is behind the log's first
// record (the log is compacted past it) up to the newest local snapshot
// that the log continues (the snapshot's offset at or after First()-1, at
// or before Last()), whose SHA-256 it checks first: the shell then replays
// the retained log after it before serving, as after any restart. Such a
// state was damaged and rebuilt empty (openState), or its directory lost,
// or it lost more than the retained events to a power cut (its commits are
// not fsynced); "rebuild it from the log" is impossible once the log is
// compacted. With no usable snapshot, it returns the reason the data
// directory is refused (--repair then starts it as a new member, which
// installs a snapshot from the primary). An install the shell recorded as
// interrupted (shell.InstallMetaKey) is left to the shell, which finishes
// it first.
func (o *opened) restoreBehindLog(dataDir string, rebuilt bool, logger *slog.Logger) string {
	first, applied := o.log.First(), o.state.Applied()
	if first <= 1 || applied+1 >= first {
		return ""
	}
	if b, ok, err := o.log.Meta(shell.InstallMetaKey); err == nil && ok && len(b) > 0 {
		return ""
	}
	what := fmt.Sprintf("its chat state applied offset %d", applied)
	if rebuilt {
		what = "its chat state was damaged"
	}
	dir := filepath.Join(dataDir, snapshotsDir)
	snaps, err := shell.Snapshots(dir)
	if err != nil {
		return fmt.Sprintf("%s and its log is compacted up to offset %d; its snapshots cannot be read (%s)", what, first-1, oneLine(err))
	}
	why := "no snapshot is kept in " + dir
	for i := len(snaps) - 1; i >= 0; i-- {
		f := snaps[i]
		if f.Offset+1 < first || f.Offset > o.log.Last() {
			why = fmt.Sprintf("no snapshot in %s meets the log (the newest covers offset %d, the log holds %d-%d)",
				dir, snaps[len(snaps)-1].Offset, first, o.log.Last())
			continue
		}
		start := time.Now()
		r, err := f.Open()
		if err == nil {
			err = o.state.RestoreSnapshot(r)
			r.Close()
		}
		if err == nil {
			err = o.stateDB.Sync()
		}
		if err != nil {
			why = fmt.Sprintf("the snapshot at offset %d cannot be restored (%s)", f.Offset, oneLine(err))
			continue
		}
		logger.Warn("the chat state is behind the compacted log: restored it from the newest local snapshot; the log after it is replayed before serving",
			"applied_was", uint64(applied), "log_first", uint64(first), "snapshot", uint64(f.Offset), "dir", f.Dir,
			"took", time.Since(start).Round(time.Millisecond))
		return ""
	}
	return fmt.Sprintf("%s and its log is compacted up to offset %d, so it cannot be rebuilt from the log; %s", what, first-1, why)
}

// logMeta is what the checks read of the log.
type logMeta interface {
	Meta(name string) ([]byte, bool, error)
	Last() eventlog.Offset
}

// checkLog compares the opened log with the witness (when there is one)
// and with the number of table files its directory held before the open.
// It returns what is wrong, "" if nothing.
func checkLog(l logMeta, w witness, hasW bool, tables int) string {
	b, hasID, err := l.Meta(replica.IdentityKey)
	if err != nil {
		return "its log's identity cannot be read (" + oneLine(err) + ")"
	}
	var id replica.Identity
	if hasID {
		if id, err = replica.DecodeIdentity(b); err != nil {
			return "its log's identity cannot be read (" + oneLine(err) + ")"
		}
	}
	last := uint64(l.Last())
	if hasW && w.Identity != "" {
		switch {
		case last < w.Stable:
			return fmt.Sprintf("its log ends at %d but held at least %d records (identity %s)", last, w.Stable, w.Identity)
		case !hasID:
			return fmt.Sprintf("its log has lost its identity %s (it ends at %d)", w.Identity, last)
		case id.String() != w.Identity:
			return fmt.Sprintf("its log has the identity %s, not the directory's %s (it ends at %d)", id, w.Identity, last)
		}
	}
	if tables > 0 && last == 0 && !hasID {
		// Not even the meta values every start writes: the tables are gone.
		_, hasPeers, err := l.Meta(membershipMeta)
		_, hasHard, herr := l.Meta(replica.HardStateKey)
		if err == nil && herr == nil && !hasPeers && !hasHard {
			return fmt.Sprintf("its log had %d table files but opens empty (its MANIFEST is damaged or missing)", tables)
		}
	}
	return ""
}

// checkApplied reports a state that applied more than the log holds, with
// no rollback due to explain it: the log lost records.
func checkApplied(l logMeta, applied eventlog.Offset, w witness) string {
	if applied <= l.Last() {
		return ""
	}
	if b, ok, err := l.Meta(rollbackMeta); err == nil && ok && len(b) == 8 && binary.BigEndian.Uint64(b) != 0 {
		return "" // the shell finishes the rollback first
	}
	s := fmt.Sprintf("its log ends at %d but its chat state applied %d records", l.Last(), applied)
	if w.Identity != "" {
		s += " (identity " + w.Identity + ")"
	}
	return s
}

// openState opens the chat state and verifies its tables' checksums. The
// state is derived from the log: one that cannot be opened, fails its
// checksums or cannot be loaded is moved aside and replaced by an empty one,
// which the shell rebuilds from the log before it serves (rebuilt reports
// it). A directory in use is an error.
func (o *opened) openState(dataDir string, logger *slog.Logger) (rebuilt bool, err error) {
	path := filepath.Join(dataDir, stateDir)
	opts := chatdb.Options{Logger: logger.With("component", "badger")}
	open := func() error {
		start := time.Now()
		db, err := chatdb.Open(path, opts)
		if errors.Is(err, chatdb.ErrLocked) {
			return fmt.Errorf("open data directory %s: %w", dataDir, err)
		}
		if err != nil {
			return &stateDamage{err}
		}
		if err := db.VerifyChecksum(); err != nil {
			db.Close()
			return &stateDamage{err}
		}
		st := chat.NewState(db.Store())
		var incomplete *chat.IncompleteRollbackError
		if lerr := st.LoadErr(); lerr != nil && !errors.Is(lerr, chat.ErrIncompleteRestore) && !errors.As(lerr, &incomplete) {
			db.Close()
			return &stateDamage{lerr}
		}
		logger.Info("verified the chat state's checksums", "mib", dirTableBytes(path)>>20, "took", time.Since(start).Round(time.Millisecond))
		o.stateDB, o.state = db, st
		return nil
	}
	err = open()
	var sd *stateDamage
	if !errors.As(err, &sd) {
		return false, err
	}
	kept, merr := moveStateAside(dataDir)
	if merr != nil {
		return false, fmt.Errorf("data directory %s: the chat state is damaged (%s) and cannot be moved aside: %w", dataDir, oneLine(sd.err), merr)
	}
	logger.Warn("the chat state is damaged: moved it aside; rebuilding it from the log before serving",
		"err", oneLine(sd.err), "kept", kept)
	db, err := chatdb.Open(path, opts)
	if err != nil {
		return false, fmt.Errorf("open data directory %s: %w", dataDir, err)
	}
	o.stateDB, o.state = db, chat.NewState(db.Store())
	return true, nil
}

type stateDamage struct{ err error }

func (e *stateDamage) Error() string { return e.err.Error() }

// dirTableBytes is the size of the table files in dir.
func dirTableBytes(dir string) int64 {
	entries, _ := os.ReadDir(dir)
	var n int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sst") {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}

// quarantineLog protects the files of the log's directory from its open:
// each is linked (tables: Badger never changes one, only deletes it) or
// copied (the rest: Badger truncates or rewrites them in place, which a
// link would share) into the quarantine beside the log. A quarantine left
// by an interrupted start is kept, and only completed: its files are the
// older ones. It returns the quarantine ("" when there is no log yet) and
// the number of tables the log has.
func quarantineLog(dataDir string) (quarantine string, tables int, err error) {
	logPath := filepath.Join(dataDir, logDir)
	entries, err := os.ReadDir(logPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("protect the log's files before opening it: %w", err)
	}
	quarantine = filepath.Join(dataDir, quarantineName)
	if err := os.MkdirAll(quarantine, 0o755); err != nil {
		return "", 0, fmt.Errorf("protect the log's files before opening it: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || name == "LOCK" {
			continue
		}
		table := strings.HasSuffix(name, ".sst")
		if table {
			tables++
		}
		dst := filepath.Join(quarantine, name)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		src := filepath.Join(logPath, name)
		err := errors.New("not a table")
		if table {
			err = os.Link(src, dst)
		}
		if err != nil {
			err = copyFile(src, dst)
		}
		if err != nil {
			return quarantine, tables, fmt.Errorf("protect the log's files before opening it: %w", err)
		}
	}
	if err := syncDir(quarantine); err != nil {
		return quarantine, tables, fmt.Errorf("protect the log's files before opening it: %w", err)
	}
	return quarantine, tables, nil
}

func removeQuarantine(quarantine string, logger *slog.Logger) {
	if quarantine == "" {
		return
	}
	if err := os.RemoveAll(quarantine); err != nil {
		logger.Warn("cannot remove the log's quarantine", "dir", quarantine, "err", err)
	}
}

// copyFile copies src to a new file dst, keeping the holes of a sparse src
// (Badger's write-ahead logs are mapped files of twice the memtable size,
// mostly holes), and fsyncs it.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	size := fi.Size()
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole after off
		}
		if err != nil {
			data = off // no SEEK_DATA here: copy the rest as it reads
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	return out.Sync()
}

// newDamagedDir creates a new directory to keep damaged files in.
func newDamagedDir(dataDir string) (string, error) {
	base := filepath.Join(dataDir, damagedPrefix+time.Now().UTC().Format("20060102T150405Z"))
	dir := base
	for i := 2; ; i++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, syncDir(dataDir)
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		dir = fmt.Sprintf("%s-%d", base, i)
	}
}

// moveInto renames src into dir under name (name.2, ... if taken) and
// returns the new path; a missing src moves nothing ("").
func moveInto(src, dir, name string) (string, error) {
	if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	dst := filepath.Join(dir, name)
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = filepath.Join(dir, fmt.Sprintf("%s.%d", name, i))
	}
	return dst, os.Rename(src, dst)
}

// keepQuarantine moves the quarantine (the log's files as they were before
// this start opened them) into a new damaged directory, as its log.
func keepQuarantine(dataDir, quarantine string) (string, error) {
	kept, err := newDamagedDir(dataDir)
	if err != nil {
		return "", err
	}
	if _, err := moveInto(quarantine, kept, logDir); err != nil {
		return "", err
	}
	return kept, errors.Join(syncDir(kept), syncDir(dataDir))
}

// moveAside moves the log, its quarantine, the state and the snapshots
// into kept (a new damaged directory if "" or gone), for a repair. The
// quarantine, when there is one, holds the log as it was before this start
// opened it: it is kept as "log", and the log as Badger left it as
// "log.opened" (also when an earlier refusal kept the quarantine already).
func moveAside(dataDir, quarantine, kept string) (string, error) {
	if _, err := os.Stat(kept); kept == "" || err != nil {
		var err error
		if kept, err = newDamagedDir(dataDir); err != nil {
			return "", err
		}
	}
	if quarantine != "" {
		if _, err := moveInto(quarantine, kept, logDir); err != nil {
			return "", err
		}
	}
	logName := logDir
	if _, err := os.Lstat(filepath.Join(kept, logDir)); err == nil {
		logName = logDir + ".opened"
	}
	if _, err := moveInto(filepath.Join(dataDir, logDir), kept, logName); err != nil {
		return "", err
	}
	if _, err := moveInto(filepath.Join(dataDir, stateDir), kept, stateDir); err != nil {
		return "", err
	}
	// The snapshots belong to the log they were taken beside.
	if _, err := moveInto(filepath.Join(dataDir, snapshotsDir), kept, snapshotsDir); err != nil {
		return "", err
	}
	return kept, errors.Join(syncDir(kept), syncDir(dataDir))
}

// moveStateAside moves a damaged state into a new damaged directory.
func moveStateAside(dataDir string) (string, error) {
	kept, err := newDamagedDir(dataDir)
	if err != nil {
		return "", err
	}
	dst, err := moveInto(filepath.Join(dataDir, stateDir), kept, stateDir)
	if err != nil {
		return "", err
	}
	if dst == "" {
		dst = kept
	}
	return dst, errors.Join(syncDir(kept), syncDir(dataDir))
}

// witnessKeeper refreshes the witness file while the replica runs.
type witnessKeeper struct {
	dataDir string
	logger  *slog.Logger

	mu      sync.Mutex
	w       witness
	lastErr string // the last write failure logged, to log each once
}

// observe records st in the witness: a higher stable offset, and a core
// that stopped on a record it could not read (role failed), which makes
// later starts refuse until --repair. It writes the file only when that
// changes what it holds.
func (k *witnessKeeper) observe(st shell.Status) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if st.Identity == "" {
		return // the shell has not started
	}
	next := k.w
	if st.Identity != next.Identity {
		next = witness{Replica: next.Replica, Identity: st.Identity}
	}
	next.Stable = max(next.Stable, st.Stable)
	if st.Role == shell.RoleFailed && next.Damaged == "" {
		why, _, _ := strings.Cut(strings.TrimPrefix(st.Waiting, "failed: "), "; restart it with --repair")
		next.Damaged = "its replication stopped at run time: " + why
	}
	k.write(next)
}

// markDamaged records a damage found while the replica runs.
func (k *witnessKeeper) markDamaged(reason string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	next := k.w
	next.Damaged = reason
	k.write(next)
}

func (k *witnessKeeper) write(next witness) {
	if next.same(k.w) {
		return
	}
	next.Updated = time.Now().UTC()
	if err := writeWitness(k.dataDir, next); err != nil {
		if err.Error() != k.lastErr {
			k.logger.Warn("cannot refresh the witness file", "err", err)
			k.lastErr = err.Error()
		}
		return
	}
	if next.Damaged != "" && k.w.Damaged == "" {
		k.logger.Error("recorded the damage in the witness file: a restart refuses to use this log until --repair", "damage", next.Damaged)
	}
	k.w, k.lastErr = next, ""
}

// run refreshes the witness every witnessEvery until ctx is done.
func (k *witnessKeeper) run(ctx context.Context, status func() shell.Status) {
	t := time.NewTicker(witnessEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.observe(status())
		}
	}
}

// scrubLog verifies the checksums of every table of the log, in the
// background once the replica runs. A table that fails is recorded in the
// witness and ends the process with the one line of a damaged directory:
// its records cannot all be served or replicated, and a restart refuses
// until --repair. It cannot be interrupted: a shutdown waits for it.
func scrubLog(l *eventlog.BadgerLog, k *witnessKeeper, cfg config, logger *slog.Logger) error {
	start := time.Now()
	tables := l.DB().Tables()
	var size uint64
	for _, t := range tables {
		size += uint64(t.OnDiskSize)
	}
	err := badgerdb.VerifyChecksum(l.DB())
	if err == nil {
		logger.Info("verified the log's checksums", "tables", len(tables), "mib", size>>20, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	reason := "its log fails its checksums (" + oneLine(err) + ")"
	logger.Error("the log fails its checksum: this replica stops", "err", oneLine(err))
	k.markDamaged(reason)
	return &damagedError{dataDir: cfg.dataDir, reason: reason, alone: len(cfg.peers) == 1}
}

// heldHandler holds the records logged through it until release, which
// passes them on (or drops them) and lets later ones through.
type heldHandler struct {
	next slog.Handler
	held *held
}

type held struct {
	mu       sync.Mutex
	released bool
	records  []heldRecord
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

func newHeldHandler(next slog.Handler) *heldHandler { return &heldHandler{next: next, held: &held{}} }

func (h *heldHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *heldHandler) Handle(ctx context.Context, r slog.Record) error {
	h.held.mu.Lock()
	if !h.held.released {
		h.held.records = append(h.held.records, heldRecord{h.next, r.Clone()})
		h.held.mu.Unlock()
		return nil
	}
	h.held.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *heldHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &heldHandler{next: h.next.WithAttrs(attrs), held: h.held}
}

func (h *heldHandler) WithGroup(name string) slog.Handler {
	return &heldHandler{next: h.next.WithGroup(name), held: h.held}
}

// release passes the held records on if emit, drops them otherwise, and
// lets the later ones through.
func (h *heldHandler) release(emit bool) {
	if emit {
		h.releaseFrom(slog.LevelDebug - 1)
	} else {
		h.releaseFrom(math.MaxInt)
	}
}

// releaseFrom passes the held records of level min and above on, drops the
// others, and lets the later ones through.
func (h *heldHandler) releaseFrom(min slog.Level) {
	h.held.mu.Lock()
	if h.held.released {
		h.held.mu.Unlock()
		return
	}
	recs := h.held.records
	h.held.records, h.held.released = nil, true
	h.held.mu.Unlock()
	for _, hr := range recs {
		if hr.r.Level >= min {
			hr.h.Handle(context.Background(), hr.r)
		}
	}
}
