package eventlog_test

// Goal: after Compact and Purge, no file of the log's directory holds a
// compacted record's bytes, while a retained record's are still found
// there by the same search; a read-only log refuses to purge.

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

func TestBadgerLog_PurgeAfterCompact(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{MemTableSize: 1 << 20})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(5, 5))
	payload := func() []byte {
		b := make([]byte, 120)
		for i := range b {
			b[i] = byte(33 + rng.IntN(94)) // incompressible for Snappy
		}
		return b
	}
	var recs []eventlog.Record
	for i := range 400 {
		recs = append(recs, eventlog.Record{Offset: eventlog.Offset(i + 1), Epoch: 1, Type: "test.x", Data: payload()})
	}
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Compact(300))
	require.NoError(t, l.Purge(t.Context()))

	files := map[string][]byte{}
	// The log stays open, as a server's would, so Badger may retire a
	// memtable file between the listing and the read: a file that is gone
	// holds nothing.
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		files[filepath.Base(path)] = b
		return err
	}))
	// The middle of a record's data: Snappy may fold a few bytes at its
	// edges into a match with the bytes around it (record headers repeat).
	holds := func(data []byte) bool {
		for _, b := range files {
			if bytes.Contains(b, data[16:len(data)-16]) {
				return true
			}
		}
		return false
	}
	for _, r := range recs[:300] {
		assert.False(t, holds(r.Data), "compacted record %d is gone from every file", r.Offset)
	}
	for _, r := range recs[300:] {
		assert.True(t, holds(r.Data), "retained record %d is found (positive control)", r.Offset)
	}
	got, err := l.Read(301, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, eventlog.Offset(301), got[0].Offset)
	require.NoError(t, l.Close())

	ro, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: true})
	require.NoError(t, err)
	defer ro.Close()
	assert.ErrorIs(t, ro.Purge(t.Context()), eventlog.ErrReadOnly)
}
