package wire

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Code is the machine-readable kind of a failed request. Clients switch on
// it; the message that goes with it is for humans. A client must treat a code
// it does not know as a non-retryable failure (servers may add codes).
type Code string

// Error codes. docs/wire.md lists which ops return which.
const (
	// CodeBadRequest: a frame or body the server cannot make sense of, a
	// missing Seq on a mutating op, an invalid field value.
	CodeBadRequest Code = "bad_request"
	// CodeBadHandshake: the first frame was not a valid hello.
	CodeBadHandshake Code = "bad_handshake"
	// CodeUnsupportedVersion: the hello asked for a version the server does
	// not speak. The message names the versions it does.
	CodeUnsupportedVersion Code = "unsupported_version"
	// CodeUnknownOp: the op name is not one the server knows.
	CodeUnknownOp Code = "unknown_op"
	// CodeFrameTooLarge: a frame over the server's maximum frame size.
	CodeFrameTooLarge Code = "frame_too_large"
	// CodeNotLoggedIn: the op needs a logged-in connection.
	CodeNotLoggedIn Code = "not_logged_in"
	// CodeNotPrimary: this replica is not the primary; Error.Primary holds
	// the address of the one it believes is, when it knows. Retryable.
	CodeNotPrimary Code = "not_primary"
	// CodeUnavailable: the replica cannot serve now (recovering, waiting for
	// its in-sync peers, shutting down). Retryable.
	CodeUnavailable Code = "unavailable"
	// CodeInvalidName: a user name that breaks the naming rules.
	CodeInvalidName Code = "invalid_name"
	// CodeUserExists: register with a name that is taken.
	CodeUserExists Code = "user_exists"
	// CodeUnknownUser: a name with no account (login, send, history).
	CodeUnknownUser Code = "unknown_user"
	// CodeWrongPassword: login with a wrong password.
	CodeWrongPassword Code = "wrong_password"
	// CodeRateLimited: too many attempts (login failures); try later.
	CodeRateLimited Code = "rate_limited"
	// CodeMessageTooLarge: a message body over the server's limit.
	CodeMessageTooLarge Code = "message_too_large"
	// CodeEmptyMessage: a message with an empty body.
	CodeEmptyMessage Code = "empty_message"
	// CodeQueueFull: the recipient has too many undelivered messages.
	CodeQueueFull Code = "queue_full"
	// CodeNotFound: a message id that does not exist (or not for you).
	CodeNotFound Code = "not_found"
	// CodeForbidden: the operation is not allowed to this user.
	CodeForbidden Code = "forbidden"
	// CodeTooManyConnections: the server is at its connection limit.
	CodeTooManyConnections Code = "too_many_connections"
	// CodeTimeout: the request did not complete in time (for instance the
	// replicas did not commit it); its outcome is unknown. Retryable: a
	// mutating request retried with the same Seq is applied at most once.
	CodeTimeout Code = "timeout"
	// CodeOutcomeUnknown: the replica took the request into its log and then
	// lost the primary role (or stopped, or a failover truncated it) before
	// the request committed: it may still be applied. Retryable, with the
	// same Seq, which tells what became of it. Unlike not_primary and
	// unavailable, which always mean "not applied".
	CodeOutcomeUnknown Code = "outcome_unknown"
	// CodeInternal: a server bug or an unexpected I/O failure.
	CodeInternal Code = "internal"
)

// Retryable reports whether a request that failed with c may succeed if sent
// again unchanged (same Seq), possibly to another replica: not_primary,
// unavailable, timeout and outcome_unknown. Every other code is a final
// answer.
func (c Code) Retryable() bool {
	switch c {
	case CodeNotPrimary, CodeUnavailable, CodeTimeout, CodeOutcomeUnknown:
		return true
	}
	return false
}

// Error is the error carried by a failed response. It implements error, so a
// client library can return it as is; find it with errors.As.
type Error struct {
	Code    Code   `msgpack:"code"`
	Message string `msgpack:"msg"`
	// Primary is a hint sent with not_primary: the address (host:port) of
	// the replica believed to be the primary, or "" if unknown.
	Primary string `msgpack:"primary,omitempty"`
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Primary != "" {
		return fmt.Sprintf("wire: %s: %s (primary: %s)", e.Code, e.Message, e.Primary)
	}
	return fmt.Sprintf("wire: %s: %s", e.Code, e.Message)
}

// Retryable reports whether e.Code is retryable.
func (e *Error) Retryable() bool { return e.Code.Retryable() }

// ErrorOf maps err to the *Error to send or report: the *Error in err's chain
// if there is one; frame_too_large, bad_request or timeout for this package's
// codec errors and deadlines; internal (with a generic message, so that
// server internals do not leak) for anything else. It returns nil for nil.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return &Error{Code: CodeFrameTooLarge, Message: err.Error()}
	case errors.Is(err, ErrMalformedFrame), errors.Is(err, ErrMalformedBody),
		errors.Is(err, ErrEmptyFrame), errors.Is(err, ErrTruncatedFrame):
		return &Error{Code: CodeBadRequest, Message: err.Error()}
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Message: "deadline exceeded"}
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}
