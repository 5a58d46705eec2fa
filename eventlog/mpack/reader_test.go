package mpack_test

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog/mpack"
)

// intForms returns v in every form msgpack writes it in: the encoder's
// shortest and full-width forms, signed and unsigned.
func intForms(t *testing.T, v int64) [][]byte {
	forms := [][]byte{
		encoded(t, func(e *msgpack.Encoder) error { return e.EncodeInt(v) }),
		encoded(t, func(e *msgpack.Encoder) error { return e.EncodeInt64(v) }),
	}
	if v >= 0 {
		forms = append(forms,
			encoded(t, func(e *msgpack.Encoder) error { return e.EncodeUint64(uint64(v)) }))
	}
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		forms = append(forms, encoded(t, func(e *msgpack.Encoder) error { return e.EncodeInt8(int8(v)) }))
	}
	if v >= math.MinInt16 && v <= math.MaxInt16 {
		forms = append(forms, encoded(t, func(e *msgpack.Encoder) error { return e.EncodeInt16(int16(v)) }))
	}
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		forms = append(forms, encoded(t, func(e *msgpack.Encoder) error { return e.EncodeInt32(int32(v)) }))
	}
	if v >= 0 && v <= math.MaxUint16 {
		forms = append(forms, encoded(t, func(e *msgpack.Encoder) error { return e.EncodeUint16(uint16(v)) }))
	}
	return forms
}

func TestReader_Integers(t *testing.T) {
	for _, v := range intBoundaries {
		for _, b := range intForms(t, v) {
			t.Run(fmt.Sprintf("%d as % x", v, b[:1]), func(t *testing.T) {
				want, err := msgpack.NewDecoder(bytes.NewReader(b)).DecodeUint64()
				require.NoError(t, err)
				r := mpack.NewReader(b)
				got, err := r.Uint64()
				require.NoError(t, err)
				assert.Equal(t, want, got, "as DecodeUint64")
				assert.Equal(t, uint64(v), got)
				assert.Equal(t, 0, r.Len())

				r = mpack.NewReader(b)
				u, err := r.Uint(math.MaxUint64)
				if v < 0 {
					assert.ErrorIs(t, err, mpack.ErrInvalid, "a negative value is not a uint")
					assert.Equal(t, 0, r.Offset(), "the reader stays at the value")
					return
				}
				require.NoError(t, err)
				assert.Equal(t, uint64(v), u)
				assert.Equal(t, len(b), r.Offset())
			})
		}
	}
	for _, v := range uintBoundaries { // beyond MaxInt64
		b := encoded(t, func(e *msgpack.Encoder) error { return e.EncodeUint(v) })
		got, err := mpack.NewReader(b).Uint64()
		require.NoError(t, err)
		assert.Equal(t, v, got)
	}
}

func TestReader_UintLimit(t *testing.T) {
	for _, limit := range []uint64{0, 127, 255, 65535, math.MaxUint32} {
		ok := mpack.AppendUint(nil, limit)
		v, err := mpack.NewReader(ok).Uint(limit)
		require.NoError(t, err)
		assert.Equal(t, limit, v)

		over := mpack.AppendUint64([]byte{0xc0}, limit+1)
		r := mpack.NewReader(over)
		require.True(t, r.Nil())
		_, err = r.Uint(limit)
		var e *mpack.Error
		require.ErrorAs(t, err, &e)
		assert.ErrorIs(t, err, mpack.ErrInvalid)
		assert.Equal(t, 1, e.Offset)
		assert.Equal(t, 1, r.Offset(), "the reader stays at the value")
		assert.Contains(t, err.Error(), fmt.Sprintf("byte 1: integer %d over %d", limit+1, limit))
	}
}

func TestReader_Strings(t *testing.T) {
	for _, n := range lenBoundaries {
		s := bytes.Repeat([]byte{'s'}, n)
		str := mpack.AppendStr(nil, string(s))
		bin := append(mpack.AppendBinHeader(nil, n), s...)

		got, err := mpack.NewReader(str).Str()
		require.NoError(t, err)
		assert.Equal(t, s, got, "str of %d", n)
		assert.NotNil(t, got, "empty is not nil")
		got, err = mpack.NewReader(str).Bytes()
		require.NoError(t, err)
		assert.Equal(t, s, got)
		got, err = mpack.NewReader(bin).Bytes()
		require.NoError(t, err)
		assert.Equal(t, s, got, "bin of %d", n)
		assert.NotNil(t, got, "empty is not nil")

		_, err = mpack.NewReader(bin).Str()
		assert.ErrorIs(t, err, mpack.ErrInvalid, "Str refuses bin")
	}
}

func TestReader_Headers(t *testing.T) {
	for _, n := range lenBoundaries {
		body := make([]byte, 2*n) // room for n entries of two bytes
		m := append(mpack.AppendMapHeader(nil, n), body...)
		r := mpack.NewReader(m)
		got, err := r.MapLen()
		require.NoError(t, err)
		assert.Equal(t, n, got)
		assert.Equal(t, 2*n, r.Len())

		a := append(mpack.AppendArrayHeader(nil, n), body[:n]...)
		r = mpack.NewReader(a)
		got, err = r.ArrayLen()
		require.NoError(t, err)
		assert.Equal(t, n, got)
		assert.Equal(t, n, r.Len())
	}
}

func TestReader_Bool(t *testing.T) {
	r := mpack.NewReader([]byte{0xc3, 0xc2})
	v, err := r.Bool()
	require.NoError(t, err)
	assert.True(t, v)
	v, err = r.Bool()
	require.NoError(t, err)
	assert.False(t, v)
}

// readers are the Reader's typed reads, by name.
var readers = map[string]func(r *mpack.Reader) error{
	"MapLen":   func(r *mpack.Reader) error { _, err := r.MapLen(); return err },
	"ArrayLen": func(r *mpack.Reader) error { _, err := r.ArrayLen(); return err },
	"Uint64":   func(r *mpack.Reader) error { _, err := r.Uint64(); return err },
	"Uint":     func(r *mpack.Reader) error { _, err := r.Uint(math.MaxUint64); return err },
	"Bool":     func(r *mpack.Reader) error { _, err := r.Bool(); return err },
	"Str":      func(r *mpack.Reader) error { _, err := r.Str(); return err },
	"Bytes":    func(r *mpack.Reader) error { _, err := r.Bytes(); return err },
	"OrNil":    func(r *mpack.Reader) error { _, err := r.BytesOrNil(); return err },
	"Code":     func(r *mpack.Reader) error { _, err := r.Code(); return err },
	"Skip":     func(r *mpack.Reader) error { return r.Skip(8) },
}

// TestReader_Truncated cuts values of every form at every byte: each read
// that wants the whole value reports ErrTruncated at a position within the
// input, and none panics.
func TestReader_Truncated(t *testing.T) {
	values := map[string][]string{
		"MapLen":   {"\x81\x01\x01", "\xde\x00\x01\x01\x01", "\xdf\x00\x00\x00\x01\x01\x01"},
		"ArrayLen": {"\x91\x01", "\xdc\x00\x01\x01", "\xdd\x00\x00\x00\x01\x01"},
		"Bool":     {"\xc3"},
		"Code":     {"\xc0"},
	}
	for _, v := range intBoundaries {
		for _, b := range intForms(t, v) {
			values["Uint64"] = append(values["Uint64"], string(b))
			if v >= 0 {
				values["Uint"] = append(values["Uint"], string(b))
			}
		}
	}
	for _, n := range []int{1, 31, 32, 256, 65536} {
		s := string(bytes.Repeat([]byte{'s'}, n))
		values["Str"] = append(values["Str"], string(mpack.AppendStr(nil, s)))
		values["Bytes"] = append(values["Bytes"], string(append(mpack.AppendBinHeader(nil, n), s...)))
		values["OrNil"] = append(values["OrNil"], string(mpack.AppendStr(nil, s)))
	}
	values["Skip"] = append(values["Skip"], marshal(t, complexValue())...)
	for name, ins := range values {
		for _, in := range ins {
			require.NoError(t, readers[name](mpack.NewReader([]byte(in))), "%s of % x", name, in)
			for _, i := range cuts(len(in)) {
				r := mpack.NewReader([]byte(in[:i]))
				err := readers[name](r)
				var e *mpack.Error
				require.ErrorAs(t, err, &e, "%s of % x cut to %d", name, in, i)
				assert.ErrorIs(t, err, mpack.ErrTruncated)
				assert.LessOrEqual(t, e.Offset, i)
				assert.Contains(t, err.Error(), "truncated")
			}
		}
	}
}

// cuts returns the lengths to cut an input of n bytes to: all of them for
// a short one, else those within a header and the last one.
func cuts(n int) []int {
	var c []int
	for i := range n {
		if n < 600 || i < 8 || i == n-1 {
			c = append(c, i)
		}
	}
	return c
}

func TestReader_WrongType(t *testing.T) {
	tests := []struct {
		read string
		in   []byte
		want string
	}{
		{"MapLen", []byte{0x91, 0x01}, "want a map, have type 0x91"},
		{"MapLen", []byte{0xc0}, "want a map"},
		{"ArrayLen", []byte{0x80}, "want an array, have type 0x80"},
		{"ArrayLen", []byte{0xc0}, "want an array"},
		{"Uint64", []byte("\xa1x"), "want an integer, have type 0xa1"},
		{"Uint64", []byte{0xc0}, "want an integer"},
		{"Uint64", []byte{0xca, 0, 0, 0, 0}, "want an integer"},
		{"Uint", []byte{0xff}, "negative integer -1"},
		{"Uint", []byte{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, "negative integer"},
		{"Uint", []byte{0xc2}, "want an integer"},
		{"Bool", []byte{0x01}, "want a bool, have type 0x01"},
		{"Bool", []byte{0xc0}, "want a bool"},
		{"Str", []byte{0xc4, 0x00}, "want a string, have type 0xc4"},
		{"Str", []byte{0xc0}, "want a string"},
		{"Bytes", []byte{0x01}, "want a string or bytes, have type 0x01"},
		{"Bytes", []byte{0xc0}, "want a string or bytes"},
		{"Skip", []byte{0xc1}, "reserved type 0xc1"},
		{"Skip", []byte{0x91, 0xc1}, "reserved type 0xc1"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s % x", tt.read, tt.in), func(t *testing.T) {
			in := append([]byte{0xc0}, tt.in...) // the value at byte 1
			r := mpack.NewReader(in)
			require.True(t, r.Nil())
			err := readers[tt.read](r)
			var e *mpack.Error
			require.ErrorAs(t, err, &e)
			assert.ErrorIs(t, err, mpack.ErrInvalid)
			assert.Contains(t, e.Reason, tt.want)
			assert.Equal(t, e.Offset, r.Offset(), "the reader stays at the value at fault")
			if tt.read != "Skip" { // Skip stops inside the value
				assert.Equal(t, 1, e.Offset)
			}
			assert.Equal(t, fmt.Sprintf("byte %d: %s", e.Offset, e.Reason), err.Error())
		})
	}
}

// TestReader_ForgedCounts: a count that cannot fit in the bytes left fails
// at once, without a long loop.
func TestReader_ForgedCounts(t *testing.T) {
	for name, in := range map[string][]byte{
		"MapLen":   {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01},
		"ArrayLen": {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		err := readers[name](mpack.NewReader(in))
		assert.ErrorIs(t, err, mpack.ErrTruncated, name)
		assert.ErrorIs(t, readers["Skip"](mpack.NewReader(in)), mpack.ErrTruncated, name)
	}
	_, err := mpack.NewReader([]byte{0x82, 0x01, 0x01, 0x01}).MapLen() // two entries in 3 bytes
	assert.ErrorIs(t, err, mpack.ErrTruncated)
}

// nest returns n nested one-element arrays around a nil.
func nest(n int) []byte { return append(bytes.Repeat([]byte{0x91}, n), 0xc0) }

func TestReader_SkipDepth(t *testing.T) {
	for _, maxDepth := range []int{0, 1, 16, 32} {
		r := mpack.NewReader(nest(maxDepth))
		require.NoError(t, r.Skip(maxDepth))
		assert.Equal(t, 0, r.Len())

		err := mpack.NewReader(nest(maxDepth + 1)).Skip(maxDepth)
		assert.ErrorIs(t, err, mpack.ErrInvalid, "depth %d", maxDepth)
		assert.ErrorContains(t, err, "nested too deep")
	}
	require.NoError(t, mpack.NewReader([]byte{0x80}).Skip(0), "an empty container is not nested")
	assert.ErrorIs(t, mpack.NewReader(nest(1_000_000)).Skip(32), mpack.ErrInvalid, "no stack exhaustion")
}

// complexValue has every type msgpack writes: ints of each width, floats,
// strings, bytes, ext (time), nested maps and arrays.
func complexValue() []any {
	return []any{
		map[string]any{"a": []any{int8(-3), uint16(300), int32(-70000), uint64(math.MaxUint64), nil, true}},
		float32(1.5), 2.5, "str", bytes.Repeat([]byte{1}, 300), time.Unix(1, 5).UTC(), time.Unix(1<<40, 0).UTC(),
		map[int]string{1: "x"}, make([]any, 20), string(make([]byte, 70000)),
	}
}

// marshal returns each of vs as msgpack, plus an ext8 and fixexts.
func marshal(t *testing.T, vs []any) []string {
	var out []string
	for _, v := range vs {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return append(out, "\xc7\x02\x01ab", "\xd4\x01a", "\xd8\x01"+string(make([]byte, 16)))
}

func TestReader_SkipAll(t *testing.T) {
	var all []byte
	for _, v := range marshal(t, complexValue()) {
		all = append(all, v...)
	}
	r := mpack.NewReader(all)
	for range marshal(t, complexValue()) {
		require.NoError(t, r.Skip(8))
	}
	assert.Equal(t, 0, r.Len())
}

func TestReader_Bytes(t *testing.T) {
	r := mpack.NewReader([]byte{1, 2, 3, 0xc0})
	assert.False(t, r.Nil(), "not a nil")
	assert.Equal(t, []byte{1, 2, 3, 0xc0}, r.Rest())
	p, err := r.Next(3)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3}, p)
	assert.Equal(t, 3, r.Offset())
	assert.Equal(t, 1, r.Len())
	_, err = r.Next(2)
	assert.ErrorIs(t, err, mpack.ErrTruncated)
	_, err = r.Next(-1)
	assert.ErrorIs(t, err, mpack.ErrTruncated)
	assert.True(t, r.Nil())
	assert.False(t, r.Nil(), "at the end")
	assert.Empty(t, r.Rest())
}

// TestReader_OrNil: the OrNil reads take nil as the zero value and
// otherwise read what their strict forms read; the strict forms refuse nil.
func TestReader_OrNil(t *testing.T) {
	r := mpack.NewReader([]byte{0xc0, 0xc0, 0x05, 0xa0, 0xc4, 0x00})
	v, err := r.Uint64OrNil()
	require.NoError(t, err)
	assert.Zero(t, v)
	s, err := r.BytesOrNil()
	require.NoError(t, err)
	assert.Nil(t, s, "nil reads as a nil slice")
	v, err = r.Uint64OrNil()
	require.NoError(t, err)
	assert.Equal(t, uint64(5), v)
	s, err = r.BytesOrNil()
	require.NoError(t, err)
	assert.Equal(t, []byte{}, s, "an empty str is empty, not nil")
	s, err = r.BytesOrNil()
	require.NoError(t, err)
	assert.Equal(t, []byte{}, s, "an empty bin is empty, not nil")
	assert.Equal(t, 0, r.Len())

	_, err = mpack.NewReader([]byte{0xc2}).Uint64OrNil()
	assert.ErrorIs(t, err, mpack.ErrInvalid)
	_, err = mpack.NewReader([]byte{0xc2}).BytesOrNil()
	assert.ErrorIs(t, err, mpack.ErrInvalid)
	_, err = mpack.NewReader(nil).BytesOrNil()
	assert.ErrorIs(t, err, mpack.ErrTruncated)
	_, err = mpack.NewReader(nil).Uint64OrNil()
	assert.ErrorIs(t, err, mpack.ErrTruncated)
}
