package eventlog_test

// FuzzDecodeRecord: DecodeRecord never panics on any bytes; stored bytes that
// decode are exactly what EncodeRecord makes of the result; and bodies framed
// with a valid checksum (so that the fuzzer reaches the msgpack decoder past
// the CRC) decode, if at all, to what msgpack's reflection made of them, and
// to records that survive an encode/decode round trip.
// Seeds: testdata/fuzz/FuzzDecodeRecord.

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []eventlog.Record{
		{},
		{Offset: 1, Epoch: 1, Type: "chat.send", ClientID: "c1", Seq: 7, Time: 1_700_000_000_000_000_000, Data: []byte("hello")},
		{Offset: 1 << 40, Epoch: 1 << 33, Type: "replica.isr", Time: -1, Data: []byte{}},
	} {
		b, err := eventlog.EncodeRecord(r)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})

	table := crc32.MakeTable(crc32.Castagnoli)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := eventlog.DecodeRecord(0, b); err == nil {
			again, err := eventlog.EncodeRecord(r)
			require.NoError(t, err)
			assert.Equal(t, b, again, "stored bytes re-encode identically")
			_, err = eventlog.DecodeRecord(r.Offset, b)
			assert.NoError(t, err, "decodes at its own offset")
		} else {
			assert.ErrorIs(t, err, eventlog.ErrCorrupt)
		}

		framed := binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, table))
		framed = append(framed, b...)
		r, err := eventlog.DecodeRecord(0, framed)
		if err != nil {
			assert.ErrorIs(t, err, eventlog.ErrCorrupt)
			return
		}
		var s shadowRecord
		require.NoError(t, msgpack.Unmarshal(b, &s), "reflection reads what the codec reads")
		assert.Equal(t, fromShadow(s), r, "with the same result")

		enc, err := eventlog.EncodeRecord(r)
		require.NoError(t, err)
		r2, err := eventlog.DecodeRecord(r.Offset, enc)
		require.NoError(t, err)
		assert.Equal(t, r, r2, "round trip")
		enc2, err := eventlog.EncodeRecord(r2)
		require.NoError(t, err)
		assert.Equal(t, enc, enc2, "encoding is deterministic")
	})
}
