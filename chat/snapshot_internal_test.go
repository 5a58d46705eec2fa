package chat

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// writePlainSnapshot writes st as a version 1 snapshot (entries not
// compressed), as replicas wrote them before version 2.
func writePlainSnapshot(t *testing.T, st *State) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	h := sha256.New()
	require.NoError(t, enc.Encode(&snapHeader{Format: snapFormat, Version: snapVersionPlain}))
	require.NoError(t, st.store.View(func(kv KV) error {
		return scanReplicated(kv, func(k, v []byte) error {
			hashEntry(h, k, v)
			_, err := b.Write(appendSnapEntry(nil, k, v))
			return err
		})
	}))
	require.NoError(t, enc.Encode(&snapEntry{End: true, Sum: h.Sum(nil)}))
	return b.Bytes()
}

// A snapshot written before entries were compressed still restores, to
// the same state; the compressed one is smaller.
func TestSnapshot_PlainVersionStillRestores(t *testing.T) {
	recs := undoLog(t, 300)
	src := NewState(NewMemStore())
	applyBatches(t, src, recs, 10)
	plain := writePlainSnapshot(t, src)
	var packed bytes.Buffer
	_, err := src.WriteSnapshot(&packed)
	require.NoError(t, err)
	assert.Less(t, packed.Len(), len(plain)/2, "S2 halves at least a state of repetitive messages")

	for name, b := range map[string][]byte{"version 1": plain, "version 2": packed.Bytes()} {
		dst := NewState(NewMemStore())
		require.NoError(t, dst.RestoreSnapshot(bytes.NewReader(b)), name)
		assert.Equal(t, digestOf(t, src), digestOf(t, dst), name)
	}
}

// Text S2 cannot match stays in the snapshot as it is: the tests that
// search the data files for deleted messages (random text) would find one
// in a snapshot, compressed or not.
func TestSnapshot_UnmatchedTextStaysLiteral(t *testing.T) {
	l := newHoleLog(t)
	rng := rand.New(rand.NewPCG(3, 4))
	body := make([]byte, 64)
	for i := range body {
		body[i] = byte('a' + rng.IntN(26))
	}
	l.add("c", 1, &SendEvent{MessageID: MessageID("c", 1), FromUID: 1, ToUID: 1, Body: string(body)}, false)
	for seq := uint64(2); seq <= 50; seq++ {
		l.send(seq, false)
	}
	st := NewState(NewMemStore())
	applyBatches(t, st, l.recs, 7)
	var b bytes.Buffer
	_, err := st.WriteSnapshot(&b)
	require.NoError(t, err)
	assert.True(t, bytes.Contains(b.Bytes(), body))
}
