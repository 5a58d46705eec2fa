package transport

import "errors"

// Sentinel errors. Functions wrap them with context; test with errors.Is.
var (
	// ErrClosed is returned by Run and Accept once the transport has stopped.
	ErrClosed = errors.New("transport: closed")
	// ErrInvalidConfig is wrapped by New for a Config it rejects.
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrNotPeer is returned by Accept for a connection that does not start
	// with Magic.
	ErrNotPeer = errors.New("transport: not a peer connection")
	// ErrFrameTooLarge is returned for a frame whose length prefix exceeds
	// the limit; nothing is allocated for it.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrMalformed is returned for a handshake frame that cannot be decoded
	// or arrives out of turn.
	ErrMalformed = errors.New("transport: malformed handshake")
	// ErrVersion is returned when the peer speaks another protocol version.
	ErrVersion = errors.New("transport: unsupported protocol version")
	// ErrWrongPeer is returned when the peer's id is unknown or is our own,
	// or when it addressed another replica than us.
	ErrWrongPeer = errors.New("transport: wrong peer id")
	// ErrAuth is returned when the peer's MAC does not verify: it does not
	// hold our cluster secret.
	ErrAuth = errors.New("transport: peer authentication failed")
	// ErrRefused is wrapped by *RefusedError.
	ErrRefused = errors.New("transport: refused by peer")
	// ErrSuperseded is returned by Accept when a newer connection from the
	// same peer replaced this one.
	ErrSuperseded = errors.New("transport: superseded by a newer connection from the peer")
)

// RefusedError reports that the other side of a handshake refused us, with
// the short reason it sent.
type RefusedError struct {
	Reason string // as sent by the peer, at most maxReason bytes
}

func (e *RefusedError) Error() string { return "transport: refused by peer: " + e.Reason }

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }
