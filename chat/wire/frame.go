package wire

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog/mpack"
)

// DefaultMaxFrame is the maximum frame body size, in bytes, when none is
// configured: large enough for a page of history, small enough that a
// connection cannot make the server allocate much.
const DefaultMaxFrame = 1 << 20

// headerSize is the length of the big-endian body length that precedes
// every frame body.
const headerSize = 4

// Kind says what a frame is.
type Kind uint8

// Frame kinds.
const (
	KindRequest  Kind = 1 // client to server; ID chosen by the client
	KindResponse Kind = 2 // server to client; ID echoes the request's
	KindPush     Kind = 3 // server to client, unsolicited; ID is 0
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindResponse:
		return "response"
	case KindPush:
		return "push"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Frame is the envelope of every message on a connection. Its msgpack form
// is a map keyed by the tag names, in this order, zero-valued optional keys
// omitted; EncodeFrame produces exactly what msgpack.Marshal would with
// compact integers.
//
// Valid frames: Kind is 1, 2 or 3; a request has ID != 0 and an Op; a push
// has ID == 0 and an Op; only a response carries Error, and then no Body; an
// Error has a Code. Body, when present, is exactly one msgpack value.
type Frame struct {
	Kind Kind `msgpack:"k"`
	// ID matches a response to its request, so a client may pipeline
	// requests. A client chooses it (unique among its requests in flight on
	// the connection); the response echoes it; pushes carry 0, as does the
	// error response to a frame the server could not read.
	ID uint64 `msgpack:"id"`
	// Op is the operation of a request or push. A response echoes the
	// request's op, for readability only: clients match responses by ID.
	Op string `msgpack:"op"`
	// Seq is the client's sequence number of a mutating request; with
	// Hello.ClientID it makes the request exactly-once. 0 on other frames.
	Seq uint64 `msgpack:"seq,omitempty"`
	// Body is the op-specific body, one msgpack value (see Encode and
	// Decode). Absent means the zero value of the body type.
	Body msgpack.RawMessage `msgpack:"b,omitempty"`
	// Error is set on a failed response, which then has no Body.
	Error *Error `msgpack:"err,omitempty"`
}

// validate checks the rules in Frame's doc comment.
func (f *Frame) validate() error {
	reason := ""
	switch {
	case f.Kind < KindRequest || f.Kind > KindPush:
		reason = "unknown kind " + strconv.Itoa(int(f.Kind))
	case f.Kind == KindRequest && f.ID == 0:
		reason = "request with id 0"
	case f.Kind != KindResponse && f.Op == "":
		reason = f.Kind.String() + " without op"
	case f.Kind == KindPush && f.ID != 0:
		reason = "push with a non-zero id"
	case f.Error != nil && f.Kind != KindResponse:
		reason = f.Kind.String() + " with an error"
	case f.Error != nil && f.Error.Code == "":
		reason = "error without a code"
	case f.Error != nil && len(f.Body) > 0:
		reason = "error response with a body"
	}
	if reason != "" {
		return &MalformedError{Reason: reason}
	}
	return nil
}

// EncodeFrame appends f, as it goes on the wire (the 4-byte big-endian body
// length, then the msgpack body), to dst. It returns a *MalformedError for an
// invalid frame and a *FrameSizeError if the body is longer than maxFrame; dst
// is then returned unchanged in length.
func EncodeFrame(dst []byte, f Frame, maxFrame uint32) ([]byte, error) {
	if err := f.validate(); err != nil {
		return dst, err
	}
	if len(f.Body) > 0 {
		if err := checkValue(f.Body); err != nil {
			return dst, &MalformedError{Reason: "body: " + err.Error()}
		}
	}
	start := len(dst)
	b := append(dst, 0, 0, 0, 0)

	n := 3
	if f.Seq != 0 {
		n++
	}
	if len(f.Body) > 0 {
		n++
	}
	if f.Error != nil {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = mpack.AppendUint(mpack.AppendStr(b, "k"), uint64(f.Kind))
	b = mpack.AppendUint(mpack.AppendStr(b, "id"), f.ID)
	b = mpack.AppendStr(mpack.AppendStr(b, "op"), f.Op)
	if f.Seq != 0 {
		b = mpack.AppendUint(mpack.AppendStr(b, "seq"), f.Seq)
	}
	if len(f.Body) > 0 {
		b = append(mpack.AppendStr(b, "b"), f.Body...)
	}
	if f.Error != nil {
		b = mpack.AppendStr(b, "err")
		if f.Error.Primary != "" {
			b = mpack.AppendMapHeader(b, 3)
		} else {
			b = mpack.AppendMapHeader(b, 2)
		}
		b = mpack.AppendStr(mpack.AppendStr(b, "code"), string(f.Error.Code))
		b = mpack.AppendStr(mpack.AppendStr(b, "msg"), f.Error.Message)
		if f.Error.Primary != "" {
			b = mpack.AppendStr(mpack.AppendStr(b, "primary"), f.Error.Primary)
		}
	}

	size := uint64(len(b) - start - headerSize)
	if size > uint64(maxFrame) || size > math.MaxUint32 {
		return b[:start], &FrameSizeError{Size: size, Max: maxFrame}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(size))
	return b, nil
}

// DecodeFrame decodes a frame body (without its length prefix). Unknown keys
// are skipped, for forward compatibility; anything else that is not a valid
// frame, including trailing bytes, is a *MalformedError. The frame does not
// alias body.
func DecodeFrame(body []byte) (Frame, error) {
	var f Frame
	r := mpReader{b: body}
	n, err := r.mapLen()
	if err != nil {
		return Frame{}, err
	}
	for range n {
		key, err := r.strBytes()
		if err != nil {
			return Frame{}, err
		}
		if err := decodeField(&r, &f, key); err != nil {
			return Frame{}, err
		}
	}
	if r.remaining() != 0 {
		return Frame{}, r.errorf("%d trailing bytes", r.remaining())
	}
	if err := f.validate(); err != nil {
		err.(*MalformedError).Offset = r.off
		return Frame{}, err
	}
	return f, nil
}

func decodeField(r *mpReader, f *Frame, key []byte) error {
	var err error
	switch string(key) {
	case "k":
		var k uint64
		k, err = r.uint(math.MaxUint8)
		f.Kind = Kind(k)
	case "id":
		f.ID, err = r.uint(math.MaxUint64)
	case "op":
		f.Op, err = r.str()
	case "seq":
		f.Seq, err = r.uint(math.MaxUint64)
	case "b":
		start := r.off
		if err = r.skip(1); err == nil {
			f.Body = bytes.Clone(r.b[start:r.off])
		}
	case "err":
		f.Error = nil
		if !r.peekNil() {
			f.Error, err = decodeError(r)
		}
	default:
		err = r.skip(1)
	}
	return err
}

func decodeError(r *mpReader) (*Error, error) {
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	var e Error
	for range n {
		key, err := r.strBytes()
		if err != nil {
			return nil, err
		}
		switch string(key) {
		case "code":
			var c string
			c, err = r.str()
			e.Code = Code(c)
		case "msg":
			e.Message, err = r.str()
		case "primary":
			e.Primary, err = r.str()
		default:
			err = r.skip(2)
		}
		if err != nil {
			return nil, err
		}
	}
	return &e, nil
}
