package client

import (
	"errors"
	"fmt"

	"github.com/replichat/replichat/chat/wire"
)

// Sentinel errors of the client. Test with errors.Is.
var (
	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = errors.New("client: closed")
	// ErrFailoverTimeout is returned when no primary answered within
	// Config.FailoverTimeout; the error also wraps the last failure seen.
	ErrFailoverTimeout = errors.New("client: no primary within the failover timeout")
	// ErrAlreadyListening is returned by Listen while another Listen runs on
	// the same Client: a connection carries one subscription.
	ErrAlreadyListening = errors.New("client: already listening")
	// ErrNotLoggedIn is returned by Listen before a successful Login: the
	// server pushes messages only to a logged-in user.
	ErrNotLoggedIn = errors.New("client: not logged in")
	// ErrNoServers is returned by New and Dial when Config.Servers is empty.
	ErrNoServers = errors.New("client: no servers configured")
	// ErrHistoryLastUnsupported is returned by HistoryLast when the server
	// pages from the beginning instead (it predates the history op's last
	// field).
	ErrHistoryLastUnsupported = errors.New("client: the server cannot page the history from its end")
	// ErrBadServer is returned by New and Dial for a Config.Servers entry
	// that is not host:port.
	ErrBadServer = errors.New("client: bad server address")
)

// Error is a failure reported by the server, final for the request that got
// it (or the last retryable one, wrapped with ErrFailoverTimeout). Find it
// with errors.As and switch on Code.
type Error struct {
	Code    wire.Code
	Message string
}

// Error returns "code: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Retryable reports whether the code says the request could succeed later.
func (e *Error) Retryable() bool { return e.Code.Retryable() }

// fromWire converts a server error to the client's type.
func fromWire(e *wire.Error) *Error {
	return &Error{Code: e.Code, Message: e.Message}
}

// connError is a connection that failed under a request: the request's
// outcome is unknown, so it is retried (with its Seq) on a new connection.
type connError struct {
	addr string
	err  error
}

func (e *connError) Error() string { return fmt.Sprintf("connection to %s: %v", e.addr, e.err) }

func (e *connError) Unwrap() error { return e.err }
