package shell

// The read side of the snapshot directory, for tools: complete snapshots
// listed oldest first, directories being written and unreadable metas
// skipped, and a state whose bytes changed refused by Verify and Open.

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

// plantSnapshot writes a snapshot directory as takeSnapshot does.
func plantSnapshot(t *testing.T, dir string, off eventlog.Offset, state []byte) string {
	t.Helper()
	path := snapshotPath(dir, off)
	require.NoError(t, os.MkdirAll(path, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(path, "state"), state, 0o644))
	sum := sha256.Sum256(state)
	b, err := msgpack.Marshal(&snapshotMeta{Offset: off, Epoch: 2, Epochs: []eventlog.EpochStart{{Epoch: 2, Start: 1}},
		Size: int64(len(state)), SHA256: sum[:], Taken: 1})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(path, "meta"), b, 0o644))
	return path
}

func TestSnapshots(t *testing.T) {
	dir := t.TempDir()
	none, err := Snapshots(filepath.Join(dir, "missing"))
	require.NoError(t, err)
	assert.Empty(t, none)
	_, ok, err := LatestSnapshot(filepath.Join(dir, "missing"))
	require.NoError(t, err)
	assert.False(t, ok)

	plantSnapshot(t, dir, 40, []byte("state at 40"))
	newest := plantSnapshot(t, dir, 120, []byte("state at 120"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tmp-123"), 0o755)) // being written
	broken := plantSnapshot(t, dir, 200, []byte("state at 200"))
	require.NoError(t, os.WriteFile(filepath.Join(broken, "meta"), []byte("not msgpack"), 0o644))

	all, err := Snapshots(dir)
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, []eventlog.Offset{40, 120}, []eventlog.Offset{all[0].Offset, all[1].Offset})
	latest, ok, err := LatestSnapshot(dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, newest, latest.Dir)
	assert.Equal(t, eventlog.Epoch(2), latest.Epoch)
	assert.Equal(t, int64(len("state at 120")), latest.Size)

	require.NoError(t, latest.Verify())
	r, err := latest.Open()
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, "state at 120", string(b))

	require.NoError(t, os.WriteFile(latest.StatePath(), []byte("state at 12!"), 0o644))
	assert.ErrorContains(t, latest.Verify(), "fails its SHA-256")
	_, err = latest.Open()
	assert.Error(t, err, "a damaged snapshot is not opened")
	require.NoError(t, os.WriteFile(latest.StatePath(), []byte("short"), 0o644))
	assert.ErrorContains(t, latest.Verify(), "its meta says")
}
