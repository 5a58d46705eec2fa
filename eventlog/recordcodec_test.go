package eventlog_test

// The hand-written record codec must be a drop-in for msgpack's reflection:
// it writes byte for byte what reflection wrote for the same tagged struct
// (the stored format under the CRC, and what replicas compare), it reads
// back everything it writes, and it reads what reflection read (other field
// orders, unknown keys, other integer widths) with reflection's result.
// Anything else is an error, never a panic. The oracle is shadowRecord: the
// same fields and tags as Record, without its codec methods.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

// shadowRecord is Record as msgpack's reflection sees it.
type shadowRecord struct {
	Offset   uint64 `msgpack:"offset"`
	Epoch    uint64 `msgpack:"epoch"`
	Type     string `msgpack:"type"`
	ClientID string `msgpack:"client,omitempty"`
	Seq      uint64 `msgpack:"seq,omitempty"`
	Time     int64  `msgpack:"time"`
	Data     []byte `msgpack:"data"`
	OEpoch   uint64 `msgpack:"oepoch,omitempty"`
	OOffset  uint64 `msgpack:"ooffset,omitempty"`
}

func toShadow(r eventlog.Record) shadowRecord {
	return shadowRecord{uint64(r.Offset), uint64(r.Epoch), r.Type, r.ClientID, r.Seq, r.Time, r.Data, uint64(r.OrigEpoch), uint64(r.OrigOffset)}
}

func fromShadow(s shadowRecord) eventlog.Record {
	return eventlog.Record{Offset: eventlog.Offset(s.Offset), Epoch: eventlog.Epoch(s.Epoch), Type: s.Type,
		ClientID: s.ClientID, Seq: s.Seq, Time: s.Time, Data: s.Data,
		OrigEpoch: eventlog.Epoch(s.OEpoch), OrigOffset: eventlog.Offset(s.OOffset)}
}

// reflectionBytes is what msgpack.Marshal wrote for r before the codec.
func reflectionBytes(t testing.TB, r eventlog.Record) []byte {
	s := toShadow(r)
	b, err := msgpack.Marshal(&s)
	require.NoError(t, err)
	return b
}

// randomRecords returns records that visit every encoding boundary: nil,
// empty and long payloads and strings (fixstr/str8/str16/str32, bin8/16/32),
// zero and extreme integers, non-ASCII types.
func randomRecords(seed uint64, n int) []eventlog.Record {
	rng := rand.New(rand.NewPCG(seed, 0))
	lengths := []int{0, 1, 31, 32, 255, 256, 65535, 65536}
	uints := []uint64{0, 1, 127, 128, 255, 256, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	ints := []int64{0, -1, -32, -33, 127, -128, -129, math.MaxInt64, math.MinInt64}
	words := []string{"chat.send", "replica.isr", "é", "日本語", "🙂", "\x00"}
	text := func() string {
		if rng.IntN(3) == 0 {
			return strings.Repeat("x", lengths[rng.IntN(len(lengths))])
		}
		var sb strings.Builder
		for range rng.IntN(4) {
			sb.WriteString(words[rng.IntN(len(words))])
		}
		return sb.String()
	}
	u := func() uint64 {
		if rng.IntN(2) == 0 {
			return uints[rng.IntN(len(uints))]
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	recs := make([]eventlog.Record, n)
	for i := range recs {
		r := eventlog.Record{Offset: eventlog.Offset(u()), Epoch: eventlog.Epoch(u()), Type: text(), Seq: u()}
		if rng.IntN(2) == 0 {
			r.ClientID = text()
		}
		if rng.IntN(3) == 0 {
			r.OrigEpoch, r.OrigOffset = eventlog.Epoch(u()), eventlog.Offset(u())
		}
		if rng.IntN(2) == 0 {
			r.Time = ints[rng.IntN(len(ints))]
		} else {
			r.Time = int64(rng.Uint64())
		}
		switch rng.IntN(4) {
		case 0: // nil Data
		case 1:
			r.Data = []byte{}
		default:
			r.Data = make([]byte, lengths[rng.IntN(len(lengths))])
			for j := range r.Data {
				r.Data[j] = byte(rng.Uint32())
			}
		}
		recs[i] = r
	}
	return recs
}

func TestRecord_AppendMsgpack_MatchesReflection(t *testing.T) {
	for i, r := range randomRecords(1, 500) {
		want := reflectionBytes(t, r)

		got := r.AppendMsgpack(nil)
		require.Equal(t, want, got, "record %d: %+v", i, toShadow(r))
		assert.Equal(t, len(want), r.MsgpackSize(), "record %d", i)

		prefix := []byte{1, 2, 3}
		assert.Equal(t, append(prefix[:3:3], want...), r.AppendMsgpack(prefix), "appends after dst")

		// Through msgpack (EncodeMsgpack), by pointer, by value, and inside
		// a slice: what callers of msgpack.Marshal get.
		viaPtr, err := msgpack.Marshal(&r)
		require.NoError(t, err)
		assert.Equal(t, want, viaPtr, "record %d via msgpack.Marshal(&r)", i)
		viaValue, err := msgpack.Marshal(r)
		require.NoError(t, err)
		assert.Equal(t, want, viaValue, "record %d via msgpack.Marshal(r)", i)

		stored, err := eventlog.EncodeRecord(r)
		require.NoError(t, err)
		assert.Equal(t, want, stored[4:], "record %d: stored body", i)
		assert.Equal(t, crc32.Checksum(want, crc32.MakeTable(crc32.Castagnoli)), binary.BigEndian.Uint32(stored), "record %d: stored checksum", i)
	}
}

func TestRecord_EncodeMsgpack_InSlice(t *testing.T) {
	recs := randomRecords(2, 40)
	shadows := make([]shadowRecord, len(recs))
	for i, r := range recs {
		shadows[i] = toShadow(r)
	}
	want, err := msgpack.Marshal(shadows)
	require.NoError(t, err)
	got, err := msgpack.Marshal(recs)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	var back []eventlog.Record
	require.NoError(t, msgpack.Unmarshal(got, &back))
	assert.Equal(t, recs, back)
}

func TestRecord_RoundTrip(t *testing.T) {
	for i, r := range randomRecords(3, 500) {
		enc := r.AppendMsgpack(nil)

		var parsed eventlog.Record
		rest, err := parsed.ParseMsgpack(append(enc, 0xc3)) // a following value stays
		require.NoError(t, err, "record %d", i)
		assert.Equal(t, []byte{0xc3}, rest)
		assert.Equal(t, r, parsed, "record %d: ParseMsgpack", i)

		var unmarshalled eventlog.Record
		require.NoError(t, msgpack.Unmarshal(enc, &unmarshalled), "record %d", i)
		assert.Equal(t, r, unmarshalled, "record %d: msgpack.Unmarshal", i)

		stored, err := eventlog.EncodeRecord(r)
		require.NoError(t, err)
		decoded, err := eventlog.DecodeRecord(r.Offset, stored)
		require.NoError(t, err, "record %d", i)
		assert.Equal(t, r, decoded, "record %d: DecodeRecord", i)
	}
}

// encodeWith marshals v with reflection under encoder options.
func encodeWith(t *testing.T, v any, compact bool) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(compact)
	require.NoError(t, enc.Encode(v))
	return buf.Bytes()
}

// TestRecord_DecodeCompatible feeds encodings the codec never writes but
// reflection read, and checks that both decoders give reflection's result.
func TestRecord_DecodeCompatible(t *testing.T) {
	full := eventlog.Record{Offset: 7, Epoch: 2, Type: "chat.send", ClientID: "c", Seq: 300, Time: -5, Data: []byte("hi")}
	type reordered struct {
		Extra map[string]any `msgpack:"zz"`
		Data  string         `msgpack:"data"`
		Time  int8           `msgpack:"time"`
		Seq   uint16         `msgpack:"seq"`
		Type  []byte         `msgpack:"type"`
		Epoch int32          `msgpack:"epoch"`
		Off   uint8          `msgpack:"offset"`
		Cl    string         `msgpack:"client"`
		Ext   time64         `msgpack:"unknown"`
	}
	type nils struct {
		Offset *uint64 `msgpack:"offset"`
		Type   *string `msgpack:"type"`
		Data   []byte  `msgpack:"data"`
		Time   *int64  `msgpack:"time"`
	}
	cases := []struct {
		name string
		in   []byte
		want eventlog.Record
	}{
		{"compact ints", encodeWith(t, toShadow(full), true), full},
		{"other order, other widths, str data, bin type, unknown keys",
			encodeWith(t, reordered{Extra: map[string]any{"a": []any{1, "x", map[string]any{"b": nil}}, "f": 1.5},
				Data: "hi", Time: -5, Seq: 300, Type: []byte("chat.send"), Epoch: 2, Off: 7, Cl: "c", Ext: time64(1)}, false),
			full},
		{"nils for zero", encodeWith(t, nils{}, false), eventlog.Record{}},
		{"empty map", []byte{0x80}, eventlog.Record{}},
		{"map16 header", append([]byte{0xde, 0, 1}, "\xa6offset\x05"...), eventlog.Record{Offset: 5}},
		{"duplicate key: the last wins", []byte("\x82\xa6offset\x01\xa6offset\x02"), eventlog.Record{Offset: 2}},
		{"empty data stays empty", []byte("\x81\xa4data\xa0"), eventlog.Record{Data: []byte{}}},
		{"long unknown key", []byte("\x81\xaaunknownkey\x01"), eventlog.Record{}},
		{"nil key, read as an unknown key", []byte("\x81\xc0\x01"), eventlog.Record{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s shadowRecord
			require.NoError(t, msgpack.Unmarshal(c.in, &s), "reflection reads it")
			require.Equal(t, c.want, fromShadow(s), "the case's expectation is reflection's")

			var parsed eventlog.Record
			rest, err := parsed.ParseMsgpack(c.in)
			require.NoError(t, err)
			assert.Empty(t, rest)
			assert.Equal(t, c.want, parsed, "ParseMsgpack")

			var unmarshalled eventlog.Record
			require.NoError(t, msgpack.Unmarshal(c.in, &unmarshalled))
			assert.Equal(t, c.want, unmarshalled, "DecodeMsgpack")
		})
	}
}

// time64 encodes as a msgpack ext value, for the skipping of unknown keys.
type time64 int64

func (v time64) EncodeMsgpack(e *msgpack.Encoder) error {
	_, err := e.Writer().Write([]byte{0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, byte(v)}) // fixext 8
	return err
}

func TestRecord_DecodeRejects(t *testing.T) {
	valid := eventlog.Record{Offset: 1, Epoch: 1, Type: "t", ClientID: "c", Seq: 1, Time: 1, Data: []byte("d")}.AppendMsgpack(nil)
	deep := []byte("\x81\xa1z")
	for range 40 {
		deep = append(deep, 0x91)
	}
	deep = append(deep, 0xc0)
	type rejectCase struct {
		name string
		in   []byte
		// parseOnly: msgpack.Unmarshal itself accepts it before or around
		// DecodeMsgpack (nil for a whole value; unbounded Skip depth), as it
		// did with reflection.
		parseOnly bool
	}
	cases := []rejectCase{
		{"empty", nil, false},
		{"nil record", []byte{0xc0}, true},
		{"array record", []byte{0x91, 0x01}, false},
		{"string offset", []byte("\x81\xa6offset\xa1x"), false},
		{"float offset", []byte("\x81\xa6offset\xcb\x00\x00\x00\x00\x00\x00\x00\x00"), false},
		{"bool time", []byte("\x81\xa4time\xc3"), false},
		{"int type", []byte("\x81\xa4type\x01"), false},
		{"map data", []byte("\x81\xa4data\x80"), false},
		{"int key", []byte("\x81\x01\x01"), false},
		{"invalid type byte in an unknown value", []byte("\x81\xa1z\xc1"), false},
		{"data longer than the input", []byte("\x81\xa4data\xc6\xff\xff\xff\xff"), false},
		{"map declaring more entries than the input", []byte("\xdf\xff\xff\xff\xff"), false},
		{"unknown array declaring 4G elements", []byte("\x81\xa1z\xdd\xff\xff\xff\xff"), false},
		{"unknown value nested 40 deep", deep, true},
	}
	for i := range len(valid) {
		cases = append(cases, rejectCase{name: fmt.Sprintf("truncated to %d bytes", i), in: valid[:i]})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r eventlog.Record
			_, err := r.ParseMsgpack(c.in)
			assert.Error(t, err, "ParseMsgpack")

			if !c.parseOnly {
				var u eventlog.Record
				assert.Error(t, msgpack.Unmarshal(c.in, &u), "DecodeMsgpack")
			}

			stored := binary.BigEndian.AppendUint32(nil, crc32.Checksum(c.in, crc32.MakeTable(crc32.Castagnoli)))
			_, err = eventlog.DecodeRecord(0, append(stored, c.in...))
			var corrupt *eventlog.CorruptError
			require.ErrorAs(t, err, &corrupt, "DecodeRecord")
			assert.Contains(t, corrupt.Reason, "undecodable")
		})
	}
}

func TestDecodeRecord_Rejects(t *testing.T) {
	r := eventlog.Record{Offset: 9, Epoch: 1, Type: "t"}
	stored, err := eventlog.EncodeRecord(r)
	require.NoError(t, err)
	withTrailer := append(bytes.Clone(stored[4:]), 0xc0)
	trailing := binary.BigEndian.AppendUint32(nil, crc32.Checksum(withTrailer, crc32.MakeTable(crc32.Castagnoli)))
	flipped := bytes.Clone(stored)
	flipped[len(flipped)-1] ^= 1
	cases := []struct {
		name   string
		want   eventlog.Offset
		in     []byte
		reason string
	}{
		{"shorter than a checksum", 9, stored[:3], "shorter than a checksum"},
		{"checksum mismatch", 9, flipped, "checksum"},
		{"another offset", 8, stored, "holds offset 9"},
		{"a value after the record", 9, append(trailing, withTrailer...), "1 bytes after the record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := eventlog.DecodeRecord(c.want, c.in)
			var corrupt *eventlog.CorruptError
			require.ErrorAs(t, err, &corrupt)
			assert.ErrorIs(t, err, eventlog.ErrCorrupt)
			assert.Equal(t, c.want, corrupt.Offset)
			assert.Contains(t, corrupt.Reason, c.reason)
		})
	}
}

func TestDecodeRecord_DoesNotAlias(t *testing.T) {
	r := eventlog.Record{Offset: 1, Type: "t", ClientID: "c", Data: []byte("payload")}
	stored, err := eventlog.EncodeRecord(r)
	require.NoError(t, err)
	got, err := eventlog.DecodeRecord(1, stored)
	require.NoError(t, err)
	for i := range stored {
		stored[i] = 0
	}
	assert.Equal(t, r, got)
}

// TestRecord_ParseMsgpack_Reuse: decoding a run of records can share memory
// with the record decoded into, but never the input's.
func TestRecord_ParseMsgpack_Reuse(t *testing.T) {
	enc := eventlog.Record{Type: "chat.send", ClientID: "c1", Data: []byte("abc")}.AppendMsgpack(nil)

	arena := make([]byte, 0, 16)
	r := eventlog.Record{Type: "chat.send", ClientID: "other", Seq: 5, Data: arena}
	_, err := r.ParseMsgpack(enc)
	require.NoError(t, err)
	assert.Equal(t, eventlog.Record{Type: "chat.send", ClientID: "c1", Data: []byte("abc")}, r, "replaced, Seq zeroed")
	assert.Same(t, &arena[:1][0], &r.Data[0], "payload copied into the record's array")
	assert.Equal(t, "abc", string(arena[:3]))

	small := make([]byte, 1)
	r = eventlog.Record{Data: small[:0]}
	_, err = r.ParseMsgpack(enc)
	require.NoError(t, err)
	assert.NotSame(t, &small[0], &r.Data[0], "too small: a new array")

	nilData := eventlog.Record{Type: "t"}.AppendMsgpack(nil)
	r = eventlog.Record{Data: arena}
	_, err = r.ParseMsgpack(nilData)
	require.NoError(t, err)
	assert.Nil(t, r.Data, "nil payload stays nil")

	emptyData := eventlog.Record{Type: "t", Data: []byte{}}.AppendMsgpack(nil)
	r = eventlog.Record{}
	_, err = r.ParseMsgpack(emptyData)
	require.NoError(t, err)
	assert.NotNil(t, r.Data, "empty payload stays non-nil")
	assert.Empty(t, r.Data)
}
