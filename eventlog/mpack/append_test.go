package mpack_test

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog/mpack"
)

// encoded returns what msgpack's Encoder writes with enc.
func encoded(t *testing.T, enc func(e *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, enc(msgpack.NewEncoder(&buf)))
	return buf.Bytes()
}

// Width boundaries of the msgpack forms.
var (
	uintBoundaries = []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, math.MaxUint64}
	intBoundaries = []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	lenBoundaries = []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536}
)

// appendCase is one value appended by mpack and encoded by msgpack.
type appendCase struct {
	name string
	got  []byte
	want func(e *msgpack.Encoder) error
}

func appendCases() []appendCase {
	prefix := []byte{0xff} // appending keeps what b held
	cases := []appendCase{
		{"nil", mpack.AppendNil(nil), func(e *msgpack.Encoder) error { return e.EncodeNil() }},
		{"true", mpack.AppendBool(nil, true), func(e *msgpack.Encoder) error { return e.EncodeBool(true) }},
		{"false", mpack.AppendBool(nil, false), func(e *msgpack.Encoder) error { return e.EncodeBool(false) }},
	}
	for _, v := range uintBoundaries {
		cases = append(cases,
			appendCase{fmt.Sprintf("uint %d", v), mpack.AppendUint(prefix, v)[1:],
				func(e *msgpack.Encoder) error { return e.EncodeUint(v) }},
			appendCase{fmt.Sprintf("uint64 %d", v), mpack.AppendUint64(prefix, v)[1:],
				func(e *msgpack.Encoder) error { return e.EncodeUint64(v) }},
			appendCase{fmt.Sprintf("uint32 %d", uint32(v)), mpack.AppendUint32(nil, uint32(v)),
				func(e *msgpack.Encoder) error { return e.EncodeUint32(uint32(v)) }},
			appendCase{fmt.Sprintf("uint8 %d", uint8(v)), mpack.AppendUint8(nil, uint8(v)),
				func(e *msgpack.Encoder) error { return e.EncodeUint8(uint8(v)) }},
		)
	}
	for _, v := range intBoundaries {
		cases = append(cases,
			appendCase{fmt.Sprintf("int %d", v), mpack.AppendInt(prefix, v)[1:],
				func(e *msgpack.Encoder) error { return e.EncodeInt(v) }},
			appendCase{fmt.Sprintf("int64 %d", v), mpack.AppendInt64(nil, v),
				func(e *msgpack.Encoder) error { return e.EncodeInt64(v) }},
		)
	}
	for _, n := range lenBoundaries {
		s := string(bytes.Repeat([]byte{'x'}, n))
		cases = append(cases,
			appendCase{fmt.Sprintf("str of %d", n), mpack.AppendStr(prefix, s)[1:],
				func(e *msgpack.Encoder) error { return e.EncodeString(s) }},
			appendCase{fmt.Sprintf("bin of %d", n), append(mpack.AppendBinHeader(nil, n), s...),
				func(e *msgpack.Encoder) error { return e.EncodeBytes([]byte(s)) }},
			appendCase{fmt.Sprintf("map of %d", n), mpack.AppendMapHeader(prefix, n)[1:],
				func(e *msgpack.Encoder) error { return e.EncodeMapLen(n) }},
			appendCase{fmt.Sprintf("array of %d", n), mpack.AppendArrayHeader(nil, n),
				func(e *msgpack.Encoder) error { return e.EncodeArrayLen(n) }},
		)
	}
	return cases
}

func TestAppend_MatchesMsgpack(t *testing.T) {
	for _, c := range appendCases() {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, encoded(t, c.want), c.got)
		})
	}
}

// TestAppend_MatchesReflection: the full-width forms are what Marshal
// writes for sized integer kinds by default, which the codecs rely on.
func TestAppend_MatchesReflection(t *testing.T) {
	marshal := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		return b
	}
	assert.Equal(t, marshal(uint64(5)), mpack.AppendUint64(nil, 5))
	assert.Equal(t, marshal(int64(-5)), mpack.AppendInt64(nil, -5))
	assert.Equal(t, marshal(uint32(5)), mpack.AppendUint32(nil, 5))
	assert.Equal(t, marshal(uint8(5)), mpack.AppendUint8(nil, 5))
	for _, v := range intBoundaries {
		assert.Equal(t, marshal(int(v)), mpack.AppendInt(nil, v), "int %d", v)
	}
}

func TestSizes(t *testing.T) {
	for _, n := range lenBoundaries {
		s := string(bytes.Repeat([]byte{'x'}, n))
		assert.Len(t, mpack.AppendStr(nil, s), mpack.StrSize(n), "str of %d", n)
		assert.Len(t, append(mpack.AppendBinHeader(nil, n), s...), mpack.BinSize(n), "bin of %d", n)
	}
}
