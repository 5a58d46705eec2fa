package chat

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// marshal must write exactly msgpack.Marshal's bytes: the state digest and
// snapshots hash stored values, and replicas on older binaries used Marshal.
func TestMarshal_SameBytesAsMsgpack(t *testing.T) {
	values := []any{
		&userRec{ID: 7, Name: "ann", Hash: "$argon2id$" + strings.Repeat("x", 90), Created: 1 << 60, Unread: 3, History: 300},
		&msgRec{ID: 1 << 40, From: 1, FromName: "ann", To: 2, ToName: "bob", Body: "hi", Time: -5, Offset: 9, SenderView: true},
		&msgRec{ID: 2, Body: strings.Repeat("é", 2000)}, // beyond the size hint
		&clientRec{Last: 1, Floor: 2, Count: 3},
		&Result{},
		&Result{Code: "queue_full", Message: "full", IDs: []uint64{1, 2, 1 << 63}},
		[]uint64{4, 5},
		&SendEvent{MessageID: 3, FromUID: 1, ToUID: 2, Body: "hello"},
	}
	for _, v := range values {
		want, err := msgpack.Marshal(v)
		require.NoError(t, err)
		got, err := marshal(v)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%T", v)
	}
	_, err := marshal(make(chan int))
	assert.Error(t, err, "an unencodable value is an error")
}

func BenchmarkMarshal(b *testing.B) {
	m := &msgRec{ID: 1 << 40, From: 1, FromName: "ann", To: 2, ToName: "bob", Body: "hello there, a benchmark message", Time: 1 << 60, Offset: 9, SenderView: true, RecipientView: true}
	b.Run("msgpack.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// appendSnapEntry gives the bytes of the reflection encoding of a
// snapshot entry, so that snapshots read back as before.
func TestAppendSnapEntry_MatchesReflection(t *testing.T) {
	for _, tc := range []struct{ k, v []byte }{
		{[]byte("applied"), []byte{0, 0, 0, 0, 0, 0, 0, 7}},
		{[]byte("d/t/idle"), nil},
		{[]byte("d/t/idle"), []byte{}},
		{bytes.Repeat([]byte("k"), 300), bytes.Repeat([]byte("v"), 70000)},
		{[]byte("m/x"), bytes.Repeat([]byte("v"), 255)},
		{[]byte("m/x"), bytes.Repeat([]byte("v"), 256)},
	} {
		want, err := msgpack.Marshal(&snapEntry{Key: tc.k, Value: tc.v})
		require.NoError(t, err)
		assert.Equal(t, want, appendSnapEntry(nil, tc.k, tc.v), "key of %d bytes, value of %d", len(tc.k), len(tc.v))
	}
}

// readSnapEntry reads what the reflection encoder writes, every shape of
// entry, and refuses what is not an entry.
func TestReadSnapEntry_ReadsReflectionEncoding(t *testing.T) {
	for _, want := range []snapEntry{
		{Key: []byte("applied"), Value: []byte{0, 0, 0, 0, 0, 0, 0, 7}},
		{Key: []byte("d/t/idle")},
		{Key: bytes.Repeat([]byte("k"), 300), Value: bytes.Repeat([]byte("v"), 70000)},
		{End: true, Sum: bytes.Repeat([]byte{9}, 32)},
	} {
		b, err := msgpack.Marshal(&want)
		require.NoError(t, err)
		var got snapEntry
		require.NoError(t, readSnapEntry(bufio.NewReader(bytes.NewReader(b)), &got))
		assert.Equal(t, want, got)
	}
	for _, bad := range [][]byte{{}, {0x81}, {0x81, 0xa1, 'x', 0xc0}, {0x81, 0xa1, 'k', 0xa1, 'x'}, {0x81, 0xa1, 'k', 0xc4, 9, 1}} {
		var e snapEntry
		assert.Error(t, readSnapEntry(bufio.NewReader(bytes.NewReader(bad)), &e), "% x", bad)
	}
}
