package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// errNoPassword is returned when no password source is available.
var errNoPassword = errors.New("no password: set $CHAT_PASSWORD, pass --password-file, or run on a terminal")

// usageError is a command line that cannot be run; exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// cliError is a server's error said again with what the command knows and
// the server's message lacks (the name of the user it is about). It keeps
// the server's code.
type cliError struct {
	code wire.Code
	msg  string
	err  error
}

func (e *cliError) Error() string { return e.msg }

func (e *cliError) Unwrap() error { return e.err }

// reword returns err as a *cliError with the message msg if it is a server
// error with code, and err itself otherwise.
func reword(err error, code wire.Code, format string, args ...any) error {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Code == code {
		return &cliError{code: code, msg: fmt.Sprintf(format, args...), err: err}
	}
	return err
}

// loginError names the user in a failed login's error.
func loginError(err error, user string) error {
	err = reword(err, wire.CodeUnknownUser, "no account %q (create it with: chat --user %s register)", user, user)
	return reword(err, wire.CodeWrongPassword, "wrong password for %q", user)
}

// statusError is the verdict of the status command when the cluster is not
// healthy: its exit status (CONTRACT.md) and why. The replicas were
// printed already.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// describe returns the machine-readable code and the one message of err,
// for the JSON error object and the line on stderr: said once, without the
// operation prefixes the client library wraps its errors in (they are for
// logs) and with the server's reason in its own words.
func (a *app) describe(err error) (code, message string) {
	var (
		ue  *usageError
		cle *cliError
		ce  *client.Error
		una *client.UnavailableError
		se  *statusError
	)
	switch {
	case errors.As(err, &ue):
		return "usage", ue.msg
	case errors.As(err, &se):
		return "unhealthy", se.msg
	case errors.As(err, &cle):
		return string(cle.code), cle.msg
	case errors.Is(err, client.ErrFailoverTimeout) && errors.As(err, &una):
		return "unavailable", fmt.Sprintf("no primary within %v: %v", a.g.timeout, una)
	case errors.Is(err, client.ErrFailoverTimeout):
		return "unavailable", fmt.Sprintf("no primary within %v", a.g.timeout)
	case errors.As(err, &ce):
		return string(ce.Code), serverMessage(ce)
	case errors.Is(err, errNoPassword):
		return "no_password", err.Error()
	case errors.Is(err, client.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled", "interrupted"
	}
	return "error", err.Error()
}

// serverMessage is the server's message of e, without the "chat: " prefix
// that the server's domain errors carry (a Go package name, not news to the
// user), or the code when the server gave no message.
func serverMessage(e *client.Error) string {
	msg := strings.TrimPrefix(e.Message, "chat: ")
	if msg == "" {
		return strings.ReplaceAll(string(e.Code), "_", " ")
	}
	return msg
}

// report prints err (with --json as an error object on stdout, else on
// stderr) and returns it. The status command's verdict prints no JSON
// object: its output is one object per replica, and the exit status says
// the rest.
func (a *app) report(err error) error {
	if err == nil {
		return nil
	}
	code, msg := a.describe(err)
	var se *statusError
	if a.out.json {
		if !errors.As(err, &se) {
			a.out.emit(errorJSON{Error: errorBody{Code: code, Message: msg}}, "")
		}
		return err
	}
	fmt.Fprintf(a.stderr, "chat: %s\n", msg)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(a.stderr, "run 'chat help' for usage")
	}
	return err
}

type errorJSON struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
