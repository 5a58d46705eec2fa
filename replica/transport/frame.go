package transport

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Magic is the preamble of every peer connection. No chat client frame can
// start with it: read as a chat frame's length prefix, 'R' alone means more
// than a gigabyte.
const Magic = "RCHPEER1"

// frameHeaderLen is the size of a frame's big-endian length prefix.
const frameHeaderLen = 4

// IsPeer reports whether the connection buffered in r starts with Magic,
// without consuming anything. It returns false as soon as one byte differs,
// so it waits for more input only while what arrived is a prefix of Magic.
// The caller should bound the wait with a read deadline. An error is the
// underlying read error (io.EOF for a connection closed early).
func IsPeer(r *bufio.Reader) (bool, error) {
	for i := 1; i <= len(Magic); i++ {
		b, err := r.Peek(i)
		if len(b) < i {
			return false, fmt.Errorf("peek peer magic: %w", err)
		}
		if b[i-1] != Magic[i-1] {
			return false, nil
		}
	}
	return true, nil
}

// frameReader reads length-prefixed frames. Not safe for concurrent use.
type frameReader struct {
	r   io.Reader
	hdr [frameHeaderLen]byte // scratch, kept here so that reading does not allocate it
}

// read returns the next frame's body, freshly allocated (the caller owns it).
// A length above max is ErrFrameTooLarge, reported before allocating. A
// connection that ends between frames is io.EOF; inside a frame,
// io.ErrUnexpectedEOF.
func (fr *frameReader) read(max int) ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(fr.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// readFrame reads one frame from r; see frameReader.read.
func readFrame(r io.Reader, max int) ([]byte, error) {
	fr := frameReader{r: r}
	return fr.read(max)
}

// appendFrame appends body as one frame to dst.
func appendFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// writeFrame writes body as one frame to w. The header goes through w's
// buffer, so a bufio.Writer coalesces it with the body.
func writeFrame(w *bufio.Writer, body []byte) error {
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}
