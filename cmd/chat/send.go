package main

import (
	"context"
	"strings"
)

// runSend sends a message: chat send TO TEXT...
func runSend(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("send", args, nil)
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return usagef("send: want TO TEXT...")
	}
	c, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := c.Send(ctx, args[0], strings.Join(args[1:], " "))
	if err != nil {
		return err
	}
	a.out.message(m)
	return nil
}
