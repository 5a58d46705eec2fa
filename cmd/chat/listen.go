package main

import (
	"context"
	"errors"

	"github.com/replichat/replichat/chat/wire"
)

// runListen prints the user's messages as they arrive, queued ones first,
// until interrupted (exit status 0). A message is acknowledged, so counts
// as delivered, once printed.
func runListen(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("listen", args, nil)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("listen: unexpected arguments %q", args)
	}
	c, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.Listen(ctx, func(m wire.Message) error {
		a.out.message(m)
		return nil
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil // interrupted: the normal way to stop
	}
	return err
}
