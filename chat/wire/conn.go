package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// readBufferSize is the size of a Conn's read buffer. Frames up to this size
// (nearly all requests) are decoded straight from the buffer, without a copy.
const readBufferSize = 16 << 10

// keepWriteBuffer bounds the encode buffer a Conn keeps between writes, so
// that one large response does not pin its size for the connection's life.
const keepWriteBuffer = 64 << 10

// Conn is one end of a protocol connection: it reads and writes frames over a
// net.Conn.
//
// ReadFrame must be called from one goroutine at a time (the connection's
// reader). WriteFrame is safe for concurrent use: a server's request handlers
// and its push loop may write at once, and each frame goes out whole.
//
// Conn sets no deadlines of its own: a read or write blocks until the
// net.Conn's deadline. A server sets a read deadline before each ReadFrame
// (its idle timeout) and a write deadline before each WriteFrame, so that a
// peer sending half a frame, or not reading, cannot hold a goroutine forever.
type Conn struct {
	nc net.Conn
	r  *bufio.Reader
	// maxFrame is the largest frame body read or written; it may change
	// once, after the handshake (SetMaxFrame), while a writer runs.
	maxFrame atomic.Uint32

	wmu  sync.Mutex
	wbuf []byte // encode buffer, guarded by wmu
}

// NewConn wraps nc. maxFrame is the largest frame body, in bytes, read or
// written; 0 means DefaultMaxFrame.
func NewConn(nc net.Conn, maxFrame uint32) *Conn {
	c := &Conn{nc: nc, r: bufio.NewReaderSize(nc, readBufferSize)}
	c.SetMaxFrame(maxFrame)
	return c
}

// SetMaxFrame changes the frame size limit; 0 means DefaultMaxFrame.
func (c *Conn) SetMaxFrame(maxFrame uint32) {
	if maxFrame == 0 {
		maxFrame = DefaultMaxFrame
	}
	c.maxFrame.Store(maxFrame)
}

// MaxFrame returns the frame size limit.
func (c *Conn) MaxFrame() uint32 { return c.maxFrame.Load() }

// NetConn returns the underlying connection, for deadlines and addresses.
// Reading from or writing to it directly corrupts the stream.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the underlying connection; blocked reads and writes return.
func (c *Conn) Close() error { return c.nc.Close() }

// ReadFrame reads the next frame. It returns io.EOF, unwrapped, when the peer
// closed the connection between frames. Otherwise an error wraps one of
// ErrEmptyFrame, ErrFrameTooLarge (checked before anything is allocated for
// the body), ErrTruncatedFrame, ErrMalformedFrame, or the net.Conn's error
// (os.ErrDeadlineExceeded on a timeout). After any error the stream position
// is unknown: close the connection, after answering with ErrorOf(err) if
// useful. The frame does not alias the read buffer.
func (c *Conn) ReadFrame() (Frame, error) {
	return readFrame(c.r, c.maxFrame.Load())
}

func readFrame(r *bufio.Reader, maxFrame uint32) (Frame, error) {
	hdr, err := r.Peek(headerSize)
	if err != nil {
		if len(hdr) == 0 && err == io.EOF {
			return Frame{}, io.EOF
		}
		return Frame{}, fmt.Errorf("read frame header: %w", eofIsTruncation(err))
	}
	size := binary.BigEndian.Uint32(hdr)
	if _, err := r.Discard(headerSize); err != nil {
		return Frame{}, fmt.Errorf("read frame header: %w", err)
	}
	switch {
	case size == 0:
		return Frame{}, ErrEmptyFrame
	case size > maxFrame:
		return Frame{}, &FrameSizeError{Size: uint64(size), Max: maxFrame}
	}

	if int(size) <= r.Size() {
		// DecodeFrame copies what it keeps, so decoding in place is safe.
		body, err := r.Peek(int(size))
		if err != nil {
			return Frame{}, fmt.Errorf("read frame body of %d bytes: %w", size, eofIsTruncation(err))
		}
		f, err := DecodeFrame(body)
		// Cannot fail: Peek has buffered these bytes.
		_, _ = r.Discard(int(size))
		return f, err
	}
	// Allocated only now that size is known to be within the limit.
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return Frame{}, fmt.Errorf("read frame body of %d bytes: %w", size, eofIsTruncation(err))
	}
	return DecodeFrame(body)
}

// eofIsTruncation turns an end of stream inside a frame into ErrTruncatedFrame.
func eofIsTruncation(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncatedFrame
	}
	return err
}

// WriteFrame encodes f and writes it with a single Write on the net.Conn.
// An invalid frame (*MalformedError) or one over the size limit
// (*FrameSizeError) is not written, and the connection remains usable;
// after a write error it is not.
func (c *Conn) WriteFrame(f Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := EncodeFrame(c.wbuf[:0], f, c.maxFrame.Load())
	if err != nil {
		return fmt.Errorf("write %s frame %d: %w", f.Kind, f.ID, err)
	}
	if cap(buf) <= keepWriteBuffer {
		c.wbuf = buf
	}
	if _, err := c.nc.Write(buf); err != nil {
		return fmt.Errorf("write %s frame %d: %w", f.Kind, f.ID, err)
	}
	return nil
}

// Hijack returns the underlying connection for another protocol (a peer
// link after its hello), including any bytes already read into the buffer.
// The Conn must not be used afterwards.
func (c *Conn) Hijack() net.Conn {
	if c.r.Buffered() == 0 {
		return c.nc
	}
	return &bufferedConn{Conn: c.nc, r: c.r}
}

// bufferedConn is a net.Conn whose reads first drain a bufio.Reader.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// AcceptHello reads and checks the first frame of a connection, on the
// server side. It returns the hello request (to answer with NewResponse and a
// HelloOK, once the server has routed the connection by Hello.Role) and its
// body. If the frame is not a valid hello (bad_handshake) or asks for another
// version (unsupported_version), AcceptHello itself writes the error response
// and returns the *Error; the caller then closes the connection.
//
// ctx bounds the wait: its deadline and cancellation become the net.Conn's
// deadline, which AcceptHello clears on return.
func (c *Conn) AcceptHello(ctx context.Context) (Frame, Hello, error) {
	var (
		req Frame
		h   Hello
	)
	err := c.withContext(ctx, func() error {
		var err error
		req, err = c.ReadFrame()
		if err != nil {
			if isCodecError(err) {
				_ = c.WriteFrame(NewErrorResponse(Frame{}, Errorf(CodeBadHandshake, "%v", err)))
			}
			return fmt.Errorf("read hello: %w", err)
		}
		if e := checkHello(req, &h); e != nil {
			// Best effort: the connection is closed next anyway.
			_ = c.WriteFrame(NewErrorResponse(req, e))
			return e
		}
		return nil
	})
	if err != nil {
		return Frame{}, Hello{}, err
	}
	return req, h, nil
}

// isCodecError reports whether err is about the bytes received rather than
// the connection: the peer is still there to be told.
func isCodecError(err error) bool {
	return errors.Is(err, ErrMalformedFrame) || errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrEmptyFrame)
}

// checkHello decodes req's hello into h and checks it.
func checkHello(req Frame, h *Hello) *Error {
	if req.Kind != KindRequest || req.Op != OpHello {
		return Errorf(CodeBadHandshake, "the first frame must be a hello request, got %s %q", req.Kind, req.Op)
	}
	if err := Decode(req.Body, h); err != nil {
		return Errorf(CodeBadHandshake, "hello body: %v", err)
	}
	if h.Version != Version {
		return Errorf(CodeUnsupportedVersion, "version %d requested, this server speaks version %d", h.Version, Version)
	}
	switch h.Role {
	case RoleClient:
		if h.ClientID == "" || len(h.ClientID) > MaxClientIDLen {
			return Errorf(CodeBadHandshake, "client_id must be 1 to %d bytes, got %d", MaxClientIDLen, len(h.ClientID))
		}
	case RolePeer:
	default:
		return Errorf(CodeBadHandshake, "unknown role %q", h.Role)
	}
	return nil
}

// Handshake sends h (its Version set to this package's Version when zero) as
// the connection's first request, with ID 1, and reads the server's answer,
// on the client side. A refusal is returned as the server's *Error. On
// success it lowers the Conn's frame size limit to HelloOK.MaxFrame if that
// is smaller.
//
// ctx bounds the exchange as for AcceptHello; deadlines are cleared on return.
func (c *Conn) Handshake(ctx context.Context, h Hello) (HelloOK, error) {
	if h.Version == 0 {
		h.Version = Version
	}
	var ok HelloOK
	err := c.withContext(ctx, func() error {
		req, err := NewRequest(1, OpHello, 0, h)
		if err != nil {
			return err
		}
		if err := c.WriteFrame(req); err != nil {
			return err
		}
		resp, err := c.ReadFrame()
		if err != nil {
			return fmt.Errorf("read hello response: %w", err)
		}
		switch {
		case resp.Kind != KindResponse || (resp.ID != req.ID && resp.ID != 0):
			return &MalformedError{Reason: fmt.Sprintf("want the hello response, got %s %d", resp.Kind, resp.ID)}
		case resp.Error != nil:
			return resp.Error
		}
		if err := Decode(resp.Body, &ok); err != nil {
			return err
		}
		if ok.Version != Version {
			return Errorf(CodeUnsupportedVersion, "server answered with version %d", ok.Version)
		}
		return nil
	})
	if err != nil {
		return HelloOK{}, fmt.Errorf("handshake: %w", err)
	}
	if ok.MaxFrame != 0 && ok.MaxFrame < c.MaxFrame() {
		c.SetMaxFrame(ok.MaxFrame)
	}
	return ok, nil
}

// withContext runs fn with ctx's deadline and cancellation applied to the
// net.Conn's deadline, and clears the deadline afterwards.
func (c *Conn) withContext(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		if err := c.nc.SetDeadline(d); err != nil {
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		// A deadline in the past wakes up blocked reads and writes.
		_ = c.nc.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	err := fn()
	if !stop() {
		<-fired // do not let the callback's deadline outlive the reset below
	}
	if err != nil {
		// The net.Conn's deadline may fire a moment before ctx notices its own.
		cerr := ctx.Err()
		if d, ok := ctx.Deadline(); ok && cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded
		}
		if cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
	}
	if derr := c.nc.SetDeadline(time.Time{}); derr != nil && err == nil {
		err = fmt.Errorf("clear deadline: %w", derr)
	}
	return err
}
