package eventlog

// A hand-written msgpack codec for Record. Catch-up moves hundreds of
// thousands of records through it (read from Badger, framed for a peer,
// decoded by the backup); msgpack's reflection spent most of that time.
//
// The bytes are exactly those msgpack/v5 (v5.4.1, default options) writes by
// reflection for the tagged struct, because they are the on-disk format
// (under a CRC) and replicas must hold byte-identical logs:
//   - a map of the fields in declaration order, "client" omitted when empty,
//     "seq", "oepoch" and "ooffset" when 0, so its header is a fixmap of 5
//     to 9 entries;
//   - keys as fixstr;
//   - Offset, Epoch, Seq, OrigEpoch and OrigOffset as uint64 (0xcf + 8
//     bytes) and Time as int64
//     (0xd3 + 8 bytes) whatever their value: reflection encodes sized
//     integer kinds at full width unless UseCompactInts is set;
//   - strings in their shortest str form (fixstr, str8, str16, str32);
//   - Data nil as nil (0xc0), otherwise bin8/16/32, so an empty non-nil
//     Data stays distinct from a nil one.
//
// Decoding accepts what reflection accepted: keys in any order, unknown keys
// (skipped), any integer form for an integer field, nil for a zero field, str
// or bin for a string or bytes. Anything else is an error, never a panic.

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/replichat/replichat/eventlog/mpack"
	"github.com/vmihailenco/msgpack/v5"
)

// Encoded keys (fixstr header + name), in field order.
const (
	keyOffsetMsgpack = "\xa6offset"
	keyEpochMsgpack  = "\xa5epoch"
	keyTypeMsgpack   = "\xa4type"
	keyClientMsgpack = "\xa6client"
	keySeqMsgpack    = "\xa3seq"
	keyTimeMsgpack   = "\xa4time"
	keyDataMsgpack   = "\xa4data"
	keyOEpochMsgpack = "\xa6oepoch"
	keyOOffMsgpack   = "\xa7ooffset"
)

// MsgpackSize returns the length of r's msgpack form, len(r.AppendMsgpack(nil)),
// so that a caller encoding many records can size its buffer once.
func (r Record) MsgpackSize() int {
	// Map header, then each key and its value; the integers are 9 bytes.
	n := 1 + len(keyOffsetMsgpack) + 9 + len(keyEpochMsgpack) + 9 +
		len(keyTypeMsgpack) + mpack.StrSize(len(r.Type)) + len(keyTimeMsgpack) + 9 + len(keyDataMsgpack)
	if r.ClientID != "" {
		n += len(keyClientMsgpack) + mpack.StrSize(len(r.ClientID))
	}
	if r.Seq != 0 {
		n += len(keySeqMsgpack) + 9
	}
	if r.OrigEpoch != 0 {
		n += len(keyOEpochMsgpack) + 9
	}
	if r.OrigOffset != 0 {
		n += len(keyOOffMsgpack) + 9
	}
	if r.Data == nil {
		return n + 1
	}
	return n + mpack.BinSize(len(r.Data))
}

// AppendMsgpack appends r's msgpack form to dst: the bytes msgpack.Marshal
// writes for it (see the top of recordcodec.go), which are what the log
// stores and what replicas exchange.
func (r Record) AppendMsgpack(dst []byte) []byte {
	dst = slices.Grow(dst, r.MsgpackSize())
	fields := 5
	if r.ClientID != "" {
		fields++
	}
	if r.Seq != 0 {
		fields++
	}
	if r.OrigEpoch != 0 {
		fields++
	}
	if r.OrigOffset != 0 {
		fields++
	}
	dst = append(dst, 0x80|byte(fields))
	dst = mpack.AppendUint64(append(dst, keyOffsetMsgpack...), uint64(r.Offset))
	dst = mpack.AppendUint64(append(dst, keyEpochMsgpack...), uint64(r.Epoch))
	dst = mpack.AppendStr(append(dst, keyTypeMsgpack...), r.Type)
	if r.ClientID != "" {
		dst = mpack.AppendStr(append(dst, keyClientMsgpack...), r.ClientID)
	}
	if r.Seq != 0 {
		dst = mpack.AppendUint64(append(dst, keySeqMsgpack...), r.Seq)
	}
	dst = append(dst, keyTimeMsgpack...)
	dst = mpack.AppendInt64(dst, r.Time)
	dst = append(dst, keyDataMsgpack...)
	if r.Data == nil {
		dst = mpack.AppendNil(dst)
	} else {
		dst = append(mpack.AppendBinHeader(dst, len(r.Data)), r.Data...)
	}
	if r.OrigEpoch != 0 {
		dst = mpack.AppendUint64(append(dst, keyOEpochMsgpack...), uint64(r.OrigEpoch))
	}
	if r.OrigOffset != 0 {
		dst = mpack.AppendUint64(append(dst, keyOOffMsgpack...), uint64(r.OrigOffset))
	}
	return dst
}

// ParseMsgpack decodes the msgpack record at the start of b into r and
// returns the bytes after it. Fields absent from b are zero. See the top of
// recordcodec.go for what is accepted; on error r is unspecified.
//
// r.Data never aliases b: like msgpack's reflection, ParseMsgpack copies the
// payload into r.Data's array when it has the capacity, else into a new one.
// It also keeps r.Type and r.ClientID when they equal the decoded strings.
// Both let a caller decoding many records share allocations between them;
// a zero r gets fresh ones.
func (r *Record) ParseMsgpack(b []byte) (rest []byte, err error) {
	d := mpack.NewReader(b)
	n, err := d.MapLen()
	if err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	old := *r
	*r = Record{}
	for range n {
		key, err := d.BytesOrNil() // nil reads as "", as reflection read it
		if err != nil {
			return nil, fmt.Errorf("decode record key: %w", err)
		}
		if err := r.parseField(d, key, &old); err != nil {
			return nil, fmt.Errorf("decode record field %q: %w", key, err)
		}
	}
	return d.Rest(), nil
}

// parseField decodes the value of key into r, reusing old's memory. As
// reflection did, it takes any integer form for an integer field (Time
// keeps the two's complement bits), str or bin for a string or bytes, and
// nil for a zero value (Data nil, not empty).
func (r *Record) parseField(d *mpack.Reader, key []byte, old *Record) error {
	var err error
	switch string(key) {
	case "offset":
		var v uint64
		v, err = d.Uint64OrNil()
		r.Offset = Offset(v)
	case "epoch":
		var v uint64
		v, err = d.Uint64OrNil()
		r.Epoch = Epoch(v)
	case "type":
		var s []byte
		s, err = d.BytesOrNil()
		r.Type = reuseString(old.Type, s)
	case "client":
		var s []byte
		s, err = d.BytesOrNil()
		r.ClientID = reuseString(old.ClientID, s)
	case "seq":
		r.Seq, err = d.Uint64OrNil()
	case "time":
		var v uint64
		v, err = d.Uint64OrNil()
		r.Time = int64(v)
	case "data":
		var s []byte
		s, err = d.BytesOrNil()
		r.Data = copyBytes(old.Data, s)
	case "oepoch":
		var v uint64
		v, err = d.Uint64OrNil()
		r.OrigEpoch = Epoch(v)
	case "ooffset":
		var v uint64
		v, err = d.Uint64OrNil()
		r.OrigOffset = Offset(v)
	default:
		err = d.Skip(maxSkipDepth)
	}
	return err
}

// maxSkipDepth bounds the nesting of an unknown field's value, so that
// hostile input cannot exhaust the stack.
const maxSkipDepth = 32

// reuseString returns old if it equals s (saving an allocation), else s as a
// new string.
func reuseString(old string, s []byte) string {
	if old == string(s) { // compiled without a conversion
		return old
	}
	return string(s)
}

// copyBytes copies s into dst's array if it has the capacity, else into a
// new one. As with reflection, nil stays nil and empty stays empty, not nil,
// so that the record re-encodes to the same bytes.
func copyBytes(dst, s []byte) []byte {
	if s == nil {
		return nil
	}
	dst = dst[:0]
	if dst == nil {
		dst = []byte{}
	}
	return append(dst, s...)
}

// EncodeMsgpack implements msgpack.CustomEncoder with AppendMsgpack, so that
// msgpack.Marshal of a Record, or of a value holding Records, writes the same
// bytes as before without reflection. Encoder options (compact integers,
// array-encoded structs) do not apply: the format is fixed.
func (r Record) EncodeMsgpack(e *msgpack.Encoder) error {
	// Append straight into the writer's spare capacity when it offers it
	// (bytes.Buffer under msgpack.Marshal, bufio.Writer).
	w := e.Writer()
	if buf, ok := w.(*bytes.Buffer); ok {
		buf.Grow(r.MsgpackSize())
	}
	var b []byte
	if ab, ok := w.(interface{ AvailableBuffer() []byte }); ok {
		b = ab.AvailableBuffer()
	}
	_, err := w.Write(r.AppendMsgpack(b))
	return err
}

// DecodeMsgpack implements msgpack.CustomDecoder, so that msgpack.Unmarshal
// into a Record, or into a value holding Records, skips reflection. It takes
// the record's raw bytes from the Decoder and parses them with ParseMsgpack,
// so both paths accept exactly the same encodings; on a byte slice, calling
// ParseMsgpack directly spares the copy.
func (r *Record) DecodeMsgpack(d *msgpack.Decoder) error {
	raw, err := d.DecodeRaw()
	if err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	rest, err := r.ParseMsgpack(raw)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("decode record: %d bytes after the record", len(rest))
	}
	return nil
}

// Interface checks: msgpack finds the methods by these interfaces.
var (
	_ msgpack.CustomEncoder = Record{}
	_ msgpack.CustomDecoder = (*Record)(nil)
)
