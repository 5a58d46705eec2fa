package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/replichat/replichat/chat/client"
)

// errNoPassword is returned when no password source is available.
var errNoPassword = errors.New("chat: no password: set $CHAT_PASSWORD, pass --password-file, or run on a terminal")

// usageError is a command line that cannot be run; exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errorCode returns the machine-readable code and the human message of
// err, for the JSON error object.
func errorCode(err error) (code, message string) {
	var ue *usageError
	var ce *client.Error
	switch {
	case errors.As(err, &ue):
		return "usage", ue.msg
	case errors.As(err, &ce):
		// A failover timeout wraps the last server error, which says why.
		return string(ce.Code), ce.Message
	case errors.Is(err, client.ErrFailoverTimeout):
		return "unavailable", err.Error()
	case errors.Is(err, errNoPassword):
		return "no_password", err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled", err.Error()
	}
	return "error", err.Error()
}

// report prints err (with --json as an error object on stdout, else on
// stderr) and returns it.
func (a *app) report(err error) error {
	if err == nil {
		return nil
	}
	if a.out.json {
		code, msg := errorCode(err)
		a.out.emit(errorJSON{Error: errorBody{Code: code, Message: msg}}, "")
		return err
	}
	fmt.Fprintf(a.stderr, "chat: %v\n", err)
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
