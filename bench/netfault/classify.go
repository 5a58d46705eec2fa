package netfault

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/replichat/replichat/replica/transport"
)

// The layout of a replica's hello frame body (replica/transport,
// handshake.go): a type byte (1), the version (2 bytes), From and To (4
// bytes each, big-endian), then a nonce. Only the prefix up to To is
// relied on, so that a longer nonce would still be recognised.
const (
	helloType       = 1
	helloFromOffset = 3
	helloMinLen     = 11
	helloMaxLen     = 128 // the transport's bound on every handshake frame
)

// classify reads the first bytes of an accepted connection and returns
// them with the id of the replica that dialed it, or Client. It reads no
// more than a peer's preamble (Magic and the hello frame), which the dialer
// sends before it waits for an answer, and stops at the first byte that
// rules the preamble out. An error means the dialer went away before
// saying anything.
func classify(nc net.Conn, timeout time.Duration) (peeked []byte, from int, err error) {
	if err := nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, 0, err
	}
	defer nc.SetReadDeadline(time.Time{})
	read := func(n int) ([]byte, error) {
		start := len(peeked)
		peeked = append(peeked, make([]byte, n)...)
		got, err := io.ReadFull(nc, peeked[start:])
		peeked = peeked[:start+got]
		return peeked[start:], err
	}
	// client is the verdict once the preamble is ruled out or cut short:
	// what was read is forwarded as the start of a client stream.
	client := func(err error) ([]byte, int, error) {
		if len(peeked) == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, 0, err
		}
		return peeked, Client, nil
	}
	for i := range len(transport.Magic) {
		b, err := read(1)
		if err != nil {
			return client(err)
		}
		if b[0] != transport.Magic[i] {
			return client(nil)
		}
		if i == 0 {
			nc.SetReadDeadline(time.Now().Add(helloTimeout))
		}
	}
	hdr, err := read(4)
	if err != nil {
		return client(err)
	}
	n := binary.BigEndian.Uint32(hdr)
	if n < helloMinLen || n > helloMaxLen {
		return client(nil)
	}
	body, err := read(int(n))
	if err != nil || body[0] != helloType {
		return client(err)
	}
	return peeked, int(binary.BigEndian.Uint32(body[helloFromOffset:])), nil
}
