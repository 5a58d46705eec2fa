package wire

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Encode returns the msgpack encoding of a body (one of the op body structs
// of this package), with integers in their most compact form.
func Encode(v any) (msgpack.RawMessage, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// Decode decodes a body into v, a pointer to a body struct. An empty raw
// leaves *v as it is (a frame without a body means the zero body). Keys that
// v does not have are ignored, so that newer peers may add fields. A body
// that is not exactly one well-formed msgpack value of the right shape is an
// error wrapping ErrMalformedBody.
func Decode(raw []byte, v any) error {
	if len(raw) == 0 {
		return nil
	}
	// The structural check bounds what the reflection decoder below may
	// allocate (every declared length fits in raw) and how deep it recurses.
	if err := checkValue(raw); err != nil {
		return fmt.Errorf("decode %T: %w: %w", v, ErrMalformedBody, err)
	}
	if err := msgpack.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %T: %w: %w", v, ErrMalformedBody, err)
	}
	return nil
}

// NewRequest builds a request frame. seq is 0 for an op that does not mutate.
func NewRequest(id uint64, op string, seq uint64, body any) (Frame, error) {
	raw, err := Encode(body)
	if err != nil {
		return Frame{}, fmt.Errorf("build %s request: %w", op, err)
	}
	return Frame{Kind: KindRequest, ID: id, Op: op, Seq: seq, Body: raw}, nil
}

// NewResponse builds the successful response to req.
func NewResponse(req Frame, body any) (Frame, error) {
	raw, err := Encode(body)
	if err != nil {
		return Frame{}, fmt.Errorf("build %s response: %w", req.Op, err)
	}
	return Frame{Kind: KindResponse, ID: req.ID, Op: req.Op, Body: raw}, nil
}

// NewErrorResponse builds the failed response to req. For a frame that could
// not be read at all, pass Frame{}: the response then has ID 0.
func NewErrorResponse(req Frame, e *Error) Frame {
	return Frame{Kind: KindResponse, ID: req.ID, Op: req.Op, Error: e}
}

// NewPush builds a push frame (op PushMessage with a Message body, for now).
func NewPush(op string, body any) (Frame, error) {
	raw, err := Encode(body)
	if err != nil {
		return Frame{}, fmt.Errorf("build %s push: %w", op, err)
	}
	return Frame{Kind: KindPush, Op: op, Body: raw}, nil
}
