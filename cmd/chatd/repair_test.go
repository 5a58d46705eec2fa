package main

// Tests of the start-up verification and repair of a data directory
// (repair.go): the witness file, the quarantine that protects the log's
// files from Badger's open, the checks, the refusal and its one line, the
// repair, the rebuilt state and the witness kept while the replica runs.

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/shell"
)

func TestWitness_WriteAtomicallyAndRead(t *testing.T) {
	dir := t.TempDir()
	_, ok, err := readWitness(dir)
	require.NoError(t, err)
	assert.False(t, ok, "no witness in a new directory")

	w := witness{Replica: 2, Identity: "2-00000000000000ab", Stable: 42, Updated: time.Now().UTC()}
	require.NoError(t, writeWitness(dir, w))
	got, ok, err := readWitness(dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, got.same(w), "%+v", got)
	w2 := w
	w2.Updated = w.Updated.Add(time.Hour)
	assert.True(t, w.same(w2), "the time of the write is not a fact")
	w2.Stable++
	assert.False(t, w.same(w2))

	// A write leaves no temporary file; one left by a crash is removed.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "."+witnessName+".tmp-123"), []byte("{"), 0o644))
	removeStaleTemps(dir)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, witnessName, entries[0].Name())

	require.NoError(t, os.WriteFile(filepath.Join(dir, witnessName), []byte("{garbage"), 0o644))
	_, _, err = readWitness(dir)
	assert.Error(t, err)
}

func TestQuarantine_LinksTablesCopiesTheRest(t *testing.T) {
	data := t.TempDir()
	q, n, err := quarantineLog(data)
	require.NoError(t, err)
	assert.Empty(t, q, "no log yet: nothing to protect")
	assert.Zero(t, n)

	logPath := filepath.Join(data, logDir)
	require.NoError(t, os.MkdirAll(logPath, 0o755))
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(logPath, name), []byte(content), 0o644))
	}
	write("000001.sst", "table one")
	write("000002.sst", "table two")
	write("MANIFEST", "manifest")
	write("LOCK", "")
	// A sparse write-ahead log: 32 MiB with 5 bytes of data in the middle.
	mem, err := os.Create(filepath.Join(logPath, "000003.mem"))
	require.NoError(t, err)
	_, err = mem.WriteAt([]byte("hello"), 16<<20)
	require.NoError(t, err)
	require.NoError(t, mem.Truncate(32<<20))
	require.NoError(t, mem.Close())

	q, n, err = quarantineLog(data)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(data, quarantineName), q)
	assert.Equal(t, 2, n, "two tables")
	sameFile := func(name string) bool {
		a, err := os.Stat(filepath.Join(logPath, name))
		require.NoError(t, err)
		b, err := os.Stat(filepath.Join(q, name))
		require.NoError(t, err)
		return os.SameFile(a, b)
	}
	assert.True(t, sameFile("000001.sst"), "a table is linked")
	assert.True(t, sameFile("000002.sst"))
	assert.False(t, sameFile("MANIFEST"), "the MANIFEST is copied (Badger truncates it in place)")
	assert.False(t, sameFile("000003.mem"), "a write-ahead log is copied (Badger truncates it in place)")
	assert.NoFileExists(t, filepath.Join(q, "LOCK"))
	b, err := os.ReadFile(filepath.Join(q, "000003.mem"))
	require.NoError(t, err)
	require.Len(t, b, 32<<20)
	assert.Equal(t, "hello", string(b[16<<20:16<<20+5]))
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(filepath.Join(q, "000003.mem"), &st))
	assert.Less(t, st.Blocks*512, int64(4<<20), "the copy keeps the holes")

	// What Badger's open does to a damaged MANIFEST: delete the tables it
	// does not name, and truncate the MANIFEST. The quarantine keeps both.
	require.NoError(t, os.Remove(filepath.Join(logPath, "000001.sst")))
	require.NoError(t, os.Truncate(filepath.Join(logPath, "MANIFEST"), 3))
	b, err = os.ReadFile(filepath.Join(q, "000001.sst"))
	require.NoError(t, err)
	assert.Equal(t, "table one", string(b))
	b, err = os.ReadFile(filepath.Join(q, "MANIFEST"))
	require.NoError(t, err)
	assert.Equal(t, "manifest", string(b))

	// A quarantine left by an interrupted start keeps its (older) files
	// and is only completed.
	write("000004.sst", "table four")
	_, n, err = quarantineLog(data)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the log's tables now")
	b, err = os.ReadFile(filepath.Join(q, "MANIFEST"))
	require.NoError(t, err)
	assert.Equal(t, "manifest", string(b), "the older copy is kept")
	assert.FileExists(t, filepath.Join(q, "000004.sst"))
	assert.FileExists(t, filepath.Join(q, "000001.sst"))
}

func identityOf(t *testing.T, replicaID replica.NodeID, disk uint64) (replica.Identity, []byte) {
	t.Helper()
	id := replica.Identity{Replica: replicaID, Disk: disk}
	b, err := replica.EncodeIdentity(id)
	require.NoError(t, err)
	return id, b
}

func appendRecords(t *testing.T, l eventlog.Log, n int) {
	t.Helper()
	var recs []eventlog.Record
	for i := range n {
		recs = append(recs, eventlog.Record{Offset: l.Last() + eventlog.Offset(i) + 1, Epoch: 1, Type: "test", Data: []byte("x")})
	}
	require.NoError(t, l.Append(recs))
}

func TestCheckLog(t *testing.T) {
	id, enc := identityOf(t, 1, 0xab)
	healthy := func() *eventlog.MemoryLog {
		l := eventlog.NewMemoryLog()
		require.NoError(t, l.SetMeta(replica.IdentityKey, enc))
		appendRecords(t, l, 10)
		return l
	}
	w := witness{Replica: 1, Identity: id.String(), Stable: 8}

	assert.Empty(t, checkLog(healthy(), w, true, 3), "a log that holds what the witness says")
	assert.Empty(t, checkLog(healthy(), witness{}, false, 3), "no witness (a directory from before witnesses)")
	assert.Empty(t, checkLog(eventlog.NewMemoryLog(), witness{}, false, 0), "a new directory")

	short := healthy()
	require.NoError(t, short.Truncate(5))
	assert.Equal(t, "its log ends at 5 but held at least 8 records (identity 1-00000000000000ab)", checkLog(short, w, true, 3))

	empty := eventlog.NewMemoryLog()
	assert.Equal(t, "its log ends at 0 but held at least 8 records (identity 1-00000000000000ab)", checkLog(empty, w, true, 0),
		"a lost log")
	w0 := w
	w0.Stable = 0
	assert.Equal(t, "its log has lost its identity 1-00000000000000ab (it ends at 0)", checkLog(empty, w0, true, 0))

	other := eventlog.NewMemoryLog()
	_, enc2 := identityOf(t, 1, 0xcd)
	require.NoError(t, other.SetMeta(replica.IdentityKey, enc2))
	appendRecords(t, other, 10)
	assert.Equal(t, "its log has the identity 1-00000000000000cd, not the directory's 1-00000000000000ab (it ends at 10)",
		checkLog(other, w, true, 3))

	// Without a witness: tables before the open, nothing at all after it.
	assert.Equal(t, "its log had 4 table files but opens empty (its MANIFEST is damaged or missing)",
		checkLog(eventlog.NewMemoryLog(), witness{}, false, 4))
	withPeers := eventlog.NewMemoryLog()
	require.NoError(t, withPeers.SetMeta(membershipMeta, []byte(`{}`)))
	assert.Empty(t, checkLog(withPeers, witness{}, false, 4), "a log holding meta values only")

	bad := eventlog.NewMemoryLog()
	require.NoError(t, bad.SetMeta(replica.IdentityKey, []byte{0xc1}))
	assert.Contains(t, checkLog(bad, w, true, 1), "its log's identity cannot be read")
}

func TestCheckApplied(t *testing.T) {
	l := eventlog.NewMemoryLog()
	appendRecords(t, l, 10)
	w := witness{Identity: "1-00000000000000ab"}
	assert.Empty(t, checkApplied(l, 10, w))
	assert.Empty(t, checkApplied(l, 3, w))
	assert.Equal(t, "its log ends at 10 but its chat state applied 34 records (identity 1-00000000000000ab)", checkApplied(l, 34, w))
	// A rollback due (after a fork) explains it: the shell finishes it.
	require.NoError(t, l.SetMeta(rollbackMeta, binary.BigEndian.AppendUint64(nil, 6)))
	assert.Empty(t, checkApplied(l, 34, w))
	require.NoError(t, l.SetMeta(rollbackMeta, nil))
	assert.NotEmpty(t, checkApplied(l, 34, w), "a finished rollback explains nothing")
}

// startCfg is the config of a three-replica start on dataDir.
func startCfg(dataDir string, id uint32, repair bool) config {
	return config{id: id, dataDir: dataDir, peers: peersOf(3), repair: repair}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openDir runs openChecked and, on success, closes what it opened.
func openDir(t *testing.T, cfg config, logger *slog.Logger, use func(d *checkedData)) error {
	t.Helper()
	require.NoError(t, os.MkdirAll(cfg.dataDir, 0o755))
	d, err := openChecked(cfg, logger, nil)
	if err != nil {
		return err
	}
	if use != nil {
		use(d)
	}
	require.NoError(t, d.stateDB.Close())
	require.NoError(t, d.log.Close())
	d.unlock()
	return nil
}

func TestOpenChecked_TruncatedManifestRefusedThenRepaired(t *testing.T) {
	data := filepath.Join(t.TempDir(), "1")
	cfg := startCfg(data, 1, false)
	var identity string
	require.NoError(t, openDir(t, cfg, discardLogger(), func(d *checkedData) {
		appendRecords(t, d.log, 50)
		identity = d.witness.w.Identity
		// The replica ran: every replica holds 40 records.
		d.witness.observe(shell.Status{Identity: identity, Stable: 40})
	}))
	w, ok, err := readWitness(data)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(40), w.Stable)
	assert.NoDirExists(t, filepath.Join(data, quarantineName), "removed once the checks passed")

	// Damage: the MANIFEST cut short, as in the issue.
	manifest := filepath.Join(data, logDir, "MANIFEST")
	fi, err := os.Stat(manifest)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(manifest, fi.Size()/2))
	err = openDir(t, cfg, discardLogger(), nil)
	var de *damagedError
	require.ErrorAs(t, err, &de)
	line := err.Error()
	assert.NotContains(t, line, "\n")
	assert.True(t, strings.HasPrefix(line, "data directory "+data+" is damaged: its log "), line)
	assert.Contains(t, line, "held at least 40 records (identity "+identity+")")
	assert.Contains(t, line, "its files are kept in "+de.kept+"; restart with --repair to fetch everything again from the cluster as a new member")
	tables, err := filepath.Glob(filepath.Join(de.kept, logDir, "*.sst"))
	require.NoError(t, err)
	assert.NotEmpty(t, tables, "the tables Badger's open deleted are kept")
	assert.NoDirExists(t, filepath.Join(data, quarantineName))

	// Again without --repair: the same line at once, from the witness.
	again := openDir(t, cfg, discardLogger(), nil)
	require.Error(t, again)
	assert.Equal(t, line, again.Error())

	// --repair: moved aside, started empty with a new identity.
	var logs bytes.Buffer
	repaired := startCfg(data, 1, true)
	require.NoError(t, openDir(t, repaired, slog.New(slog.NewTextHandler(&logs, nil)), func(d *checkedData) {
		assert.Zero(t, d.log.Last(), "an empty log: a new member fetches everything")
		assert.Zero(t, d.state.Applied())
		assert.NotEqual(t, identity, d.witness.w.Identity, "a new identity")
	}))
	assert.Contains(t, logs.String(), "level=WARN msg=\"repairing the data directory")
	for _, kept := range []string{logDir, logDir + ".opened", stateDir} {
		assert.DirExists(t, filepath.Join(de.kept, kept))
	}
	w, _, err = readWitness(data)
	require.NoError(t, err)
	assert.Empty(t, w.Damaged)
	assert.Zero(t, w.Stable)
	assert.NotEqual(t, identity, w.Identity)
	// And the repaired directory starts normally.
	require.NoError(t, openDir(t, cfg, discardLogger(), nil))
}

func TestOpenChecked_LostLogAndOneReplicaCluster(t *testing.T) {
	data := filepath.Join(t.TempDir(), "0")
	cfg := config{id: 0, dataDir: data, peers: peersOf(1)}
	require.NoError(t, openDir(t, cfg, discardLogger(), func(d *checkedData) {
		appendRecords(t, d.log, 5)
		d.witness.observe(shell.Status{Identity: d.witness.w.Identity, Stable: 5})
	}))
	require.NoError(t, os.RemoveAll(filepath.Join(data, logDir)))
	err := openDir(t, cfg, discardLogger(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "its log ends at 0 but held at least 5 records")
	assert.Contains(t, err.Error(), "this one-replica cluster has no other copy of it")
	assert.NotContains(t, err.Error(), "its files are kept", "there was nothing left to keep")
}

func TestOpenChecked_StateAheadOfLog(t *testing.T) {
	data := filepath.Join(t.TempDir(), "1")
	cfg := startCfg(data, 1, false)
	require.NoError(t, openDir(t, cfg, discardLogger(), func(d *checkedData) { appendRecords(t, d.log, 3) }))
	// The state says it applied more than the log holds; the witness has
	// no stable offset to compare with (it was lost too).
	require.NoError(t, os.Remove(filepath.Join(data, witnessName)))
	require.NoError(t, openDir(t, cfg, discardLogger(), func(d *checkedData) {
		recs, err := d.log.Read(1, 1<<20)
		require.NoError(t, err)
		require.NoError(t, d.state.Apply(recs))
		require.NoError(t, d.log.Truncate(1))
	}))
	require.NoError(t, os.Remove(filepath.Join(data, witnessName)))
	err := openDir(t, cfg, discardLogger(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "its log ends at 1 but its chat state applied 3 records")
}

func TestOpenChecked_DamagedStateIsRebuilt(t *testing.T) {
	data := filepath.Join(t.TempDir(), "1")
	cfg := startCfg(data, 1, false)
	require.NoError(t, openDir(t, cfg, discardLogger(), nil))
	require.NoError(t, os.WriteFile(filepath.Join(data, stateDir, "MANIFEST"), []byte("garbage"), 0o644))
	var logs bytes.Buffer
	require.NoError(t, openDir(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(d *checkedData) {
		assert.Zero(t, d.state.Applied(), "an empty state, replayed from the log")
	}))
	assert.Contains(t, logs.String(), "level=WARN msg=\"the chat state is damaged: moved it aside; rebuilding it from the log before serving\"")
	kept, err := filepath.Glob(filepath.Join(data, damagedPrefix+"*", stateDir, "MANIFEST"))
	require.NoError(t, err)
	assert.Len(t, kept, 1, "the damaged state is kept")
}

func TestOpenChecked_RuntimeFailureIsRecorded(t *testing.T) {
	data := filepath.Join(t.TempDir(), "1")
	cfg := startCfg(data, 1, false)
	require.NoError(t, openDir(t, cfg, discardLogger(), func(d *checkedData) {
		id := d.witness.w.Identity
		d.witness.observe(shell.Status{Identity: id, Stable: 3, Role: shell.RoleBackup})
		d.witness.observe(shell.Status{Identity: id, Stable: 1, Role: shell.RoleFailed,
			Waiting: "failed: replica: stopped: eventlog: corrupt record at offset 397; restart it with --repair to fetch its log again from the cluster"})
		assert.Equal(t, uint64(3), d.witness.w.Stable, "the stable offset never goes back")
	}))
	err := openDir(t, cfg, discardLogger(), nil)
	require.Error(t, err)
	assert.Equal(t, "data directory "+data+" is damaged: its replication stopped at run time: replica: stopped: eventlog: corrupt record at offset 397; "+
		"restart with --repair to fetch everything again from the cluster as a new member", err.Error())
	require.NoError(t, openDir(t, startCfg(data, 1, true), discardLogger(), nil))
	kept, err := filepath.Glob(filepath.Join(data, damagedPrefix+"*", logDir))
	require.NoError(t, err)
	assert.Len(t, kept, 1)
	require.NoError(t, openDir(t, cfg, discardLogger(), nil), "repaired")
}

func TestOpenChecked_WrongReplicaAndLocked(t *testing.T) {
	data := filepath.Join(t.TempDir(), "1")
	require.NoError(t, openDir(t, startCfg(data, 1, false), discardLogger(), func(d *checkedData) {
		// While it runs, another start on the directory is refused.
		_, err := openChecked(startCfg(data, 1, false), discardLogger(), nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is in use by another chatd")
	}))
	err := openDir(t, startCfg(data, 2, true), discardLogger(), nil)
	require.Error(t, err)
	assert.Equal(t, "data directory "+data+" belongs to replica 1 (its replica.json says so), this is replica 2: start it with --id 1", err.Error())
	assert.DirExists(t, filepath.Join(data, logDir), "never repaired away")
}

func TestHeldHandler(t *testing.T) {
	var out bytes.Buffer
	h := newHeldHandler(slog.NewTextHandler(&out, nil))
	l := slog.New(h).With("component", "badger")
	l.Error("Received err: boom. Cleaning up...")
	assert.Empty(t, out.String(), "held")
	h.release(false)
	assert.Empty(t, out.String(), "dropped")
	l.Warn("later")
	assert.Contains(t, out.String(), "later")
	assert.Contains(t, out.String(), "component=badger")

	out.Reset()
	h = newHeldHandler(slog.NewTextHandler(&out, nil))
	slog.New(h).Warn("during the open")
	h.release(true)
	assert.Contains(t, out.String(), "during the open", "passed on")
}
