package wire

// These tests pin the frame codec: the byte layout, its agreement with the
// msgpack library (so that any msgpack implementation can speak it), and
// that every kind of bad input is a typed error, never a panic or a hang.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

var sampleFrames = []struct {
	name string
	f    Frame
}{
	{"request", Frame{Kind: KindRequest, ID: 1, Op: OpPing}},
	{"mutating request", Frame{Kind: KindRequest, ID: 1 << 33, Op: OpSend, Seq: 300,
		Body: mustEncode(SendRequest{To: "bob", Body: strings.Repeat("x", 70000)})}},
	{"response", Frame{Kind: KindResponse, ID: 77, Op: OpLogin, Body: mustEncode(LoginResponse{User: "a", Unread: 2})}},
	{"error response", Frame{Kind: KindResponse, ID: 5, Op: OpSend,
		Error: &Error{Code: CodeNotPrimary, Message: "backup", Primary: "127.0.0.1:7101"}}},
	{"error without hint", Frame{Kind: KindResponse, Error: &Error{Code: CodeBadRequest, Message: ""}}},
	{"push", Frame{Kind: KindPush, Op: PushMessage, Body: mustEncode(sampleMessage)}},
	{"long op", Frame{Kind: KindRequest, ID: 255, Op: strings.Repeat("o", 300)}},
}

func mustEncode(v any) msgpack.RawMessage {
	raw, err := Encode(v)
	if err != nil {
		panic(err)
	}
	return raw
}

func TestFrame_RoundTrip(t *testing.T) {
	for _, tc := range sampleFrames {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeFrame([]byte("prefix"), tc.f, DefaultMaxFrame)
			require.NoError(t, err)
			require.Equal(t, "prefix", string(b[:6]), "EncodeFrame appends")
			b = b[6:]
			assert.Equal(t, uint32(len(b)-headerSize), binary.BigEndian.Uint32(b))

			for _, size := range []int{16, readBufferSize} { // copying and in-place paths
				got, err := readFrame(bufio.NewReaderSize(bytes.NewReader(b), size), DefaultMaxFrame)
				require.NoError(t, err)
				assert.Equal(t, tc.f, got)
			}
		})
	}
}

// TestFrame_MatchesMsgpackLibrary checks the hand-written envelope codec
// against the reflection codec on the Frame struct tags: the bytes are the
// same, and each side decodes the other's output.
func TestFrame_MatchesMsgpackLibrary(t *testing.T) {
	for _, tc := range sampleFrames {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			enc := msgpack.NewEncoder(&buf)
			enc.UseCompactInts(true)
			require.NoError(t, enc.Encode(tc.f))

			ours, err := EncodeFrame(nil, tc.f, DefaultMaxFrame)
			require.NoError(t, err)
			assert.Equal(t, buf.Bytes(), ours[headerSize:])

			// Non-compact integers from another encoder decode the same.
			wide, err := msgpack.Marshal(tc.f)
			require.NoError(t, err)
			got, err := DecodeFrame(wide)
			require.NoError(t, err)
			assert.Equal(t, tc.f, got)

			var back Frame
			require.NoError(t, msgpack.Unmarshal(ours[headerSize:], &back))
			assert.Equal(t, tc.f, back)
		})
	}
}

// TestFrame_Hex pins the example bytes given in docs/wire.md.
func TestFrame_Hex(t *testing.T) {
	req, err := NewRequest(2, OpSend, 1, SendRequest{To: "bob", Body: "hi"})
	require.NoError(t, err)
	b, err := EncodeFrame(nil, req, DefaultMaxFrame)
	require.NoError(t, err)
	assert.Equal(t, "00000027"+"85"+"a16b01"+"a26964"+"02"+"a26f70a473656e64"+"a373657101"+
		"a162"+"82a2746fa3626f62a4626f6479a26869", hexOf(b))
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

// frameBytes builds a frame by hand: a length header and the body.
func frameBytes(size uint32, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, size), body...)
}

// body marshals a map as a frame body, to build frames EncodeFrame refuses.
func body(t *testing.T, m map[string]any) []byte { return msgpackMarshal(t, m) }

func TestReadFrame_Errors(t *testing.T) {
	valid, err := EncodeFrame(nil, Frame{Kind: KindRequest, ID: 1, Op: OpPing}, DefaultMaxFrame)
	require.NoError(t, err)
	validBody := valid[headerSize:]

	tests := []struct {
		name  string
		input []byte
		want  error // sentinel
	}{
		{"zero length", frameBytes(0, nil), ErrEmptyFrame},
		{"over max", frameBytes(DefaultMaxFrame+1, nil), ErrFrameTooLarge},
		{"max uint32", frameBytes(^uint32(0), nil), ErrFrameTooLarge},
		{"half header", []byte{0, 0}, ErrTruncatedFrame},
		{"truncated body", frameBytes(uint32(len(validBody)), validBody[:3]), ErrTruncatedFrame},
		{"truncated large body", frameBytes(readBufferSize+10, make([]byte, 100)), ErrTruncatedFrame},
		{"garbage", frameBytes(3, []byte{0xc1, 0xc1, 0xc1}), ErrMalformedFrame},
		{"not a map", frameBytes(1, []byte{0x01}), ErrMalformedFrame},
		{"trailing bytes", frameBytes(uint32(len(validBody)+1), append(bytes.Clone(validBody), 0xc0)), ErrMalformedFrame},
		{"unknown kind", frameBytes(0, body(t, map[string]any{"k": 4, "id": 1, "op": "ping"})), ErrMalformedFrame},
		{"kind 0", frameBytes(0, body(t, map[string]any{"k": 0, "id": 1, "op": "ping"})), ErrMalformedFrame},
		{"kind 257", frameBytes(0, body(t, map[string]any{"k": 257, "id": 1, "op": "ping"})), ErrMalformedFrame},
		{"negative id", frameBytes(0, body(t, map[string]any{"k": 1, "id": -1, "op": "ping"})), ErrMalformedFrame},
		{"string id", frameBytes(0, body(t, map[string]any{"k": 1, "id": "1", "op": "ping"})), ErrMalformedFrame},
		{"binary op", frameBytes(0, body(t, map[string]any{"k": 1, "id": 1, "op": []byte("ping")})), ErrMalformedFrame},
		{"request id 0", frameBytes(0, body(t, map[string]any{"k": 1, "id": 0, "op": "ping"})), ErrMalformedFrame},
		{"request without op", frameBytes(0, body(t, map[string]any{"k": 1, "id": 1})), ErrMalformedFrame},
		{"push with id", frameBytes(0, body(t, map[string]any{"k": 3, "id": 1, "op": "message"})), ErrMalformedFrame},
		{"request with error", frameBytes(0, body(t, map[string]any{"k": 1, "id": 1, "op": "ping",
			"err": map[string]any{"code": "internal"}})), ErrMalformedFrame},
		{"error without code", frameBytes(0, body(t, map[string]any{"k": 2, "id": 1,
			"err": map[string]any{"msg": "x"}})), ErrMalformedFrame},
		{"error with body", frameBytes(0, body(t, map[string]any{"k": 2, "id": 1, "b": 1,
			"err": map[string]any{"code": "internal"}})), ErrMalformedFrame},
		{"error not a map", frameBytes(0, body(t, map[string]any{"k": 2, "id": 1, "err": "x"})), ErrMalformedFrame},
		{"body too deep", frameBytes(0, body(t, map[string]any{"k": 2, "id": 1, "b": nest(maxDepth)})), ErrMalformedFrame},
		{"forged string length", frameBytes(0, []byte{0x81, 0xdb, 0x7f, 0xff, 0xff, 0xff}), ErrMalformedFrame},
		{"forged map count", frameBytes(0, []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0x00}), ErrMalformedFrame},
		{"forged array in body", frameBytes(0, []byte{0x81, 0xa1, 'b', 0xdd, 0xff, 0xff, 0xff, 0xff}), ErrMalformedFrame},
		{"reserved code in body", frameBytes(0, []byte{0x81, 0xa1, 'b', 0xc1}), ErrMalformedFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.input
			if len(in) > headerSize && binary.BigEndian.Uint32(in) == 0 {
				binary.BigEndian.PutUint32(in, uint32(len(in)-headerSize)) // fill in the length
			}
			for _, size := range []int{16, readBufferSize} {
				f, err := readFrame(bufio.NewReaderSize(bytes.NewReader(in), size), DefaultMaxFrame)
				require.Error(t, err)
				assert.ErrorIs(t, err, tc.want)
				assert.Equal(t, Frame{}, f)
				assert.NotEqual(t, CodeInternal, ErrorOf(err).Code)
			}
		})
	}
}

// nest returns n nested one-element lists, as a value for msgpack.Marshal.
func nest(n int) any {
	var v any
	for range n {
		v = []any{v}
	}
	return v
}

func TestReadFrame_TypedDetails(t *testing.T) {
	_, err := readFrame(bufio.NewReader(bytes.NewReader(frameBytes(2000, nil))), 1000)
	var size *FrameSizeError
	require.ErrorAs(t, err, &size)
	assert.Equal(t, &FrameSizeError{Size: 2000, Max: 1000}, size)

	_, err = readFrame(bufio.NewReader(bytes.NewReader(frameBytes(2, []byte{0x80, 0x01}))), 1000)
	var bad *MalformedError
	require.ErrorAs(t, err, &bad)
	assert.Equal(t, 1, bad.Offset)
	assert.Contains(t, bad.Error(), "trailing")
}

func TestReadFrame_EOF(t *testing.T) {
	valid, err := EncodeFrame(nil, Frame{Kind: KindRequest, ID: 1, Op: OpPing}, DefaultMaxFrame)
	require.NoError(t, err)
	r := bufio.NewReader(bytes.NewReader(append(bytes.Clone(valid), valid...)))
	for range 2 {
		_, err := readFrame(r, DefaultMaxFrame)
		require.NoError(t, err)
	}
	_, err = readFrame(r, DefaultMaxFrame)
	assert.Same(t, io.EOF, err, "a clean end between frames is io.EOF itself")
}

func TestReadFrame_UnknownKeysSkipped(t *testing.T) {
	b := body(t, map[string]any{"k": 1, "id": 3, "op": "ping", "future": map[string]any{"x": []int{1, 2}}})
	f, err := DecodeFrame(b)
	require.NoError(t, err)
	assert.Equal(t, Frame{Kind: KindRequest, ID: 3, Op: OpPing}, f)
}

func TestEncodeFrame_Errors(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		max  uint32
		want error
	}{
		{"unknown kind", Frame{Kind: 9, ID: 1, Op: "x"}, DefaultMaxFrame, ErrMalformedFrame},
		{"request id 0", Frame{Kind: KindRequest, Op: "x"}, DefaultMaxFrame, ErrMalformedFrame},
		{"push without op", Frame{Kind: KindPush}, DefaultMaxFrame, ErrMalformedFrame},
		{"bad body", Frame{Kind: KindPush, Op: "x", Body: []byte{0x92, 0x01}}, DefaultMaxFrame, ErrMalformedFrame},
		{"body with trailing bytes", Frame{Kind: KindPush, Op: "x", Body: []byte{0x01, 0x01}}, DefaultMaxFrame, ErrMalformedFrame},
		{"too large", Frame{Kind: KindPush, Op: "x", Body: mustEncode(strings.Repeat("x", 100))}, 100, ErrFrameTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			b, err := EncodeFrame(dst, tc.f, tc.max)
			assert.ErrorIs(t, err, tc.want)
			assert.Equal(t, "keep", string(b), "nothing appended on error")
		})
	}
}

func TestCheckValue_Depth(t *testing.T) {
	assert.NoError(t, checkValue(deepArray(maxDepth-1)))
	assert.ErrorIs(t, checkValue(deepArray(maxDepth)), ErrMalformedFrame)
	// A million-deep nest is refused quickly, without a deep recursion.
	assert.True(t, errors.Is(checkValue(deepArray(1_000_000)), ErrMalformedFrame))
}

func TestCheckValue_AllTypes(t *testing.T) {
	values := []any{nil, true, false, -1, -100, 1, 200, 70000, 1 << 40, int64(-1 << 40),
		float32(1.5), 2.5, "", strings.Repeat("s", 40), strings.Repeat("s", 300), strings.Repeat("s", 70000),
		[]byte{}, make([]byte, 300), make([]byte, 70000), make([]int, 20), make([]int, 70000),
		map[string]int{"a": 1}, map[int]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 10: 10, 11: 11, 12: 12, 13: 13, 14: 14, 15: 15, 16: 16}}
	for _, v := range values {
		b := msgpackMarshal(t, v)
		assert.NoError(t, checkValue(b), "%T", v)
		for i := range len(b) - 1 {
			assert.Error(t, checkValue(b[:i+1]), "truncated %T at %d", v, i+1)
		}
	}
	exts := [][]byte{
		{0xd4, 1, 0}, {0xd5, 1, 0, 0}, {0xd6, 1, 0, 0, 0, 0}, {0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		append([]byte{0xd8, 1}, make([]byte, 16)...), {0xc7, 2, 1, 0, 0}, {0xc8, 0, 1, 1, 0},
		{0xc9, 0, 0, 0, 1, 1, 0}, {0xde, 0, 1, 0x01, 0x02}, {0xdc, 0, 1, 0x01}, {0xdd, 0, 0, 0, 1, 0x01},
	}
	for _, b := range exts {
		assert.NoError(t, checkValue(b), "% x", b)
		assert.Error(t, checkValue(b[:len(b)-1]), "% x truncated", b)
	}
}
