package shell

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/replichat/replichat/eventlog"
)

// Reading the snapshots a shell keeps, for the tools that work on a data
// directory beside it: chatd's start-up checks (a state lost with a
// compacted log is restored from the latest snapshot) and chatreplay (a
// compacted log is replayed from one). The shell alone writes them.

// InstallMetaKey is the log meta value the shell sets while it installs a
// snapshot (naming the snapshot's directory) and empties once the install
// is done; a start finishes an install it finds set.
const InstallMetaKey = installKey

// SnapshotFile is a complete snapshot kept in a snapshot directory
// (Config.SnapshotDir).
type SnapshotFile struct {
	// Dir is the snapshot's own directory.
	Dir string
	// Offset is the last record the state covers, Epoch its epoch.
	Offset eventlog.Offset
	Epoch  eventlog.Epoch
	// Epochs is the epoch history up to Offset.
	Epochs []eventlog.EpochStart
	// Size is the state's size in bytes; Taken when it was written.
	Size  int64
	Taken time.Time
	sum   []byte
}

// StatePath is the file holding the state machine's bytes.
func (f SnapshotFile) StatePath() string { return filepath.Join(f.Dir, "state") }

// Snapshots returns the complete snapshots in dir, oldest first (none if
// there is no dir). Directories being written (tmp-*) and snapshots whose
// meta cannot be read are skipped.
func Snapshots(dir string) ([]SnapshotFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot directory: %w", err)
	}
	var out []SnapshotFile
	for _, e := range entries {
		if _, err := strconv.ParseUint(e.Name(), 10, 64); err != nil || !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		m, err := readSnapshotMeta(path)
		if err != nil {
			continue
		}
		out = append(out, SnapshotFile{Dir: path, Offset: m.Offset, Epoch: m.Epoch, Epochs: m.Epochs, Size: m.Size,
			Taken: time.Unix(0, m.Taken), sum: m.SHA256})
	}
	slices.SortFunc(out, func(a, b SnapshotFile) int { return cmp.Compare(a.Offset, b.Offset) })
	return out, nil
}

// LatestSnapshot returns the newest complete snapshot in dir (ok false if
// there is none).
func LatestSnapshot(dir string) (f SnapshotFile, ok bool, err error) {
	all, err := Snapshots(dir)
	if err != nil || len(all) == 0 {
		return SnapshotFile{}, false, err
	}
	return all[len(all)-1], true, nil
}

// Verify reads the state and checks its size and SHA-256 against the
// snapshot's meta.
func (f SnapshotFile) Verify() error {
	in, err := os.Open(f.StatePath())
	if err != nil {
		return fmt.Errorf("verify snapshot at %d: %w", f.Offset, err)
	}
	defer in.Close()
	h := sha256.New()
	n, err := io.Copy(h, in)
	switch {
	case err != nil:
		return fmt.Errorf("verify snapshot at %d: %w", f.Offset, err)
	case n != f.Size:
		return fmt.Errorf("verify snapshot at %d: %d bytes, its meta says %d", f.Offset, n, f.Size)
	case !bytes.Equal(h.Sum(nil), f.sum):
		return fmt.Errorf("verify snapshot at %d: its state fails its SHA-256", f.Offset)
	}
	return nil
}

// Open verifies the snapshot and opens its state for reading, for a
// Snapshotter's RestoreSnapshot. The caller closes it.
func (f SnapshotFile) Open() (io.ReadCloser, error) {
	if err := f.Verify(); err != nil {
		return nil, err
	}
	in, err := os.Open(f.StatePath())
	if err != nil {
		return nil, fmt.Errorf("open snapshot at %d: %w", f.Offset, err)
	}
	return in, nil
}
