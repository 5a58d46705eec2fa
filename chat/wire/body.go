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

// MetricsRequest asks a replica for its replication lag samples with a
// sequence number greater than After (0: the oldest it still holds), at most
// Limit (0: the replica's default). Only the primary records samples.
// Works without logging in, on any replica.
type MetricsRequest struct {
	After uint64 `msgpack:"after"`
	Limit int    `msgpack:"limit"`
}

// MetricsResponse carries lag samples in sequence order. Next is the Seq of
// the last sample returned (pass it as After), or After when there is none.
// Dropped counts samples the replica discarded before anyone fetched them
// (its buffer is bounded).
type MetricsResponse struct {
	Samples []LagSample `msgpack:"samples"`
	Next    uint64      `msgpack:"next"`
	Dropped uint64      `msgpack:"dropped"`
}

// LagSample is the replication lag of one log offset to one backup, measured
// on the primary's clock: AppendedAt when the primary's own append of the
// record was durable, DurableAt when the backup's acknowledgement that it
// holds the record durably arrived, AppliedAt when the backup reported it
// applied (0 if not yet known). Times are Unix nanoseconds.
type LagSample struct {
	Seq        uint64 `msgpack:"seq"`
	Offset     uint64 `msgpack:"offset"`
	Replica    uint32 `msgpack:"replica"`
	AppendedAt int64  `msgpack:"appended_at"`
	DurableAt  int64  `msgpack:"durable_at"`
	AppliedAt  int64  `msgpack:"applied_at"`
}
