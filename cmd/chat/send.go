package main

import (
	"context"
	"strings"

	"github.com/replichat/replichat/chat/wire"
)

// runSend sends a message: chat send TO TEXT... (after "--", TEXT may
// start with "-").
func runSend(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("send", args, nil)
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return usagef("send: want TO TEXT...")
	}
	c, done, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer done()
	to := args[0]
	m, err := c.Send(ctx, to, strings.Join(args[1:], " "))
	if err != nil {
		return reword(err, wire.CodeUnknownUser, "unknown user %q", to)
	}
	a.out.message(m)
	return nil
}
