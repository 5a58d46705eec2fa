package chat_test

// Goal: a snapshot restores the exact state (digest, applied offset, dedup
// table), replay continues from it as from the original, and a broken or
// interrupted restore leaves a state that refuses to be used.

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

func TestState_Snapshot(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	runScript(t, h)
	cut := len(h.recs)
	ann, _, err := h.st.User("ann")
	require.NoError(t, err)
	h.send(ann.ID, "bob", "after the snapshot")

	src := replay(t, h.recs[:cut], 4)
	var buf bytes.Buffer
	off, err := src.WriteSnapshot(&buf)
	require.NoError(t, err)
	assert.Equal(t, eventlog.Offset(cut), off, "the snapshot says which offset it covers")

	// Restore over a state holding other data: it is replaced.
	dst := newHarness(t, chat.NewMemStore())
	dst.register("stale")
	require.NoError(t, dst.st.RestoreSnapshot(bytes.NewReader(buf.Bytes())))
	assert.Equal(t, digest(t, src), digest(t, dst.st))
	assert.Equal(t, eventlog.Offset(cut), dst.st.Applied())
	require.NoError(t, dst.st.Check())
	_, ok, err := dst.st.User("stale")
	require.NoError(t, err)
	assert.False(t, ok)

	// Snapshot + replay == replay from zero.
	require.NoError(t, dst.st.Apply(h.recs))
	assert.Equal(t, digest(t, h.st), digest(t, dst.st))
	_, ok, err = dst.st.Result("c", 1000)
	require.NoError(t, err)
	assert.True(t, ok, "the dedup table travels in the snapshot")
}

func TestState_Snapshot_Broken(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	runScript(t, h)
	var buf bytes.Buffer
	require.NoError(t, snapErr(h.st.WriteSnapshot(&buf)))
	good := buf.Bytes()
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x01

	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not a snapshot", []byte{0x80}},
		{"truncated", good[:len(good)/2]},
		{"corrupted", flipped},
		{"no end", good[:len(good)-40]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := chat.NewMemStore()
			st := chat.NewState(store)
			err := st.RestoreSnapshot(bytes.NewReader(tt.data))
			require.Error(t, err)
			assert.ErrorIs(t, err, chat.ErrBadSnapshot)
		})
	}

	// A restore that fails midway leaves the state unusable, even after a
	// restart, until a restore completes.
	store := chat.NewMemStore()
	st := chat.NewState(store)
	require.Error(t, st.RestoreSnapshot(bytes.NewReader(good[:len(good)/2])))
	reopened := chat.NewState(store)
	assert.Equal(t, eventlog.Offset(0), reopened.Applied())
	for name, err := range map[string]error{
		"apply":  reopened.Apply(h.recs[:1]),
		"check":  reopened.Check(),
		"digest": func() error { _, err := reopened.Digest(); return err }(),
		"write":  snapErr(reopened.WriteSnapshot(&bytes.Buffer{})),
	} {
		assert.ErrorIs(t, err, chat.ErrIncompleteRestore, name)
	}
	require.NoError(t, reopened.RestoreSnapshot(bytes.NewReader(good)))
	assert.Equal(t, digest(t, h.st), digest(t, reopened))
	require.NoError(t, reopened.Apply(h.recs), "usable again")
}

func TestState_Check_DetectsCorruption(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
	}{
		{"queue entry", "q/"},
		{"history entry", "h/"},
		{"message", "m/"},
		{"name", "n/"},
		{"account origin", "o/"},
		{"dedup result", "d/r/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := chat.NewMemStore()
			h := newHarness(t, store)
			runScript(t, h)
			require.NoError(t, h.st.Check())
			// Remove the first key of the prefix behind State's back.
			require.NoError(t, store.Update(func(kv chat.KV) error {
				var key []byte
				err := kv.Scan([]byte(tt.prefix), nil, func(k, _ []byte) (bool, error) {
					key = bytes.Clone(k)
					return false, nil
				})
				require.NotNil(t, key)
				if err != nil {
					return err
				}
				return kv.Delete(key)
			}))
			err := h.st.Check()
			require.Error(t, err)
			assert.ErrorIs(t, err, chat.ErrInconsistent)
		})
	}
}
