package eventlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
)

// Offset is the position of a record in the log. Offsets are dense and start
// at 1; 0 means "no record".
type Offset uint64

// String formats the offset as a decimal number.
func (o Offset) String() string { return strconv.FormatUint(uint64(o), 10) }

// Epoch numbers the reigns of primaries. At most one primary writes in an
// epoch; 0 means "no epoch yet".
type Epoch uint64

// String formats the epoch as a decimal number.
func (e Epoch) String() string { return strconv.FormatUint(uint64(e), 10) }

// Record is one event in the log.
//
// The msgpack field names are part of the on-disk format: renaming one is a
// format change. The tags document that format; the codec that writes it is
// hand-written (recordcodec.go) and must keep to it. Records contain no maps, so their encoding is deterministic:
// replicas that hold the same records hold the same bytes.
type Record struct {
	Offset Offset `msgpack:"offset"`
	Epoch  Epoch  `msgpack:"epoch"`
	// Type tags the payload, e.g. "chat.send" or "replica.isr". The log does
	// not interpret it.
	Type string `msgpack:"type"`
	// ClientID and Seq identify the client request that caused the record,
	// for exactly-once deduplication. Both are zero for protocol events.
	ClientID string `msgpack:"client,omitempty"`
	Seq      uint64 `msgpack:"seq,omitempty"`
	// Time is the primary's wall clock when it accepted the request, in Unix
	// nanoseconds. Applying the record uses this, never a local clock, so that
	// every replica derives the same state.
	Time int64 `msgpack:"time"`
	// Data is the type-specific payload, opaque to the log.
	Data []byte `msgpack:"data"`
	// OrigEpoch and OrigOffset are set on a re-submitted record: a client
	// record that a replica had to truncate after the log forked and sent to
	// the primary again (DESIGN.md, divergence). They locate the copy that
	// was truncated, in the epoch of the primary that first accepted it, so
	// that an operator (chatreplay) can tell a re-submission from a client's
	// own request. Both are zero on every other record.
	OrigEpoch  Epoch  `msgpack:"oepoch,omitempty"`
	OrigOffset Offset `msgpack:"ooffset,omitempty"`
}

// Resubmitted reports whether r is a re-submission of a truncated record.
func (r Record) Resubmitted() bool { return r.OrigEpoch != 0 || r.OrigOffset != 0 }

// EpochStart is one entry of the epoch history: epoch Epoch's first record
// has offset Start (or would have, if the epoch wrote nothing).
type EpochStart struct {
	Epoch Epoch  `msgpack:"epoch"`
	Start Offset `msgpack:"start"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// checksumSize is the length of the CRC-32C that prefixes an encoded record.
const checksumSize = 4

// EncodeRecord returns the stored form of r: a big-endian CRC-32C of the
// msgpack body (Record.AppendMsgpack), followed by the body.
func EncodeRecord(r Record) ([]byte, error) {
	// One allocation: the body is appended after a placeholder for the sum.
	buf := make([]byte, checksumSize, checksumSize+r.MsgpackSize())
	buf = r.AppendMsgpack(buf)
	binary.BigEndian.PutUint32(buf, crc32.Checksum(buf[checksumSize:], crcTable))
	return buf, nil
}

// DecodeRecord parses the stored form of the record expected at offset want,
// verifying its checksum and its offset. Any mismatch is a *CorruptError
// naming want. The returned record does not alias b.
func DecodeRecord(want Offset, b []byte) (Record, error) {
	if len(b) < checksumSize {
		return Record{}, &CorruptError{Offset: want, Reason: fmt.Sprintf("%d bytes is shorter than a checksum", len(b))}
	}
	sum, body := binary.BigEndian.Uint32(b), b[checksumSize:]
	if got := crc32.Checksum(body, crcTable); got != sum {
		return Record{}, &CorruptError{Offset: want, Reason: fmt.Sprintf("checksum %08x, stored %08x", got, sum)}
	}
	var r Record
	rest, err := r.ParseMsgpack(body)
	if err != nil {
		return Record{}, &CorruptError{Offset: want, Reason: "undecodable: " + err.Error()}
	}
	if len(rest) != 0 {
		return Record{}, &CorruptError{Offset: want, Reason: fmt.Sprintf("%d bytes after the record", len(rest))}
	}
	if want != 0 && r.Offset != want {
		return Record{}, &CorruptError{Offset: want, Reason: fmt.Sprintf("holds offset %d", r.Offset)}
	}
	return r, nil
}
