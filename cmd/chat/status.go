package main

import (
	"context"

	"github.com/replichat/replichat/chat/client"
)

// runStatus prints one line per replica, as this client sees the cluster.
// It needs neither a primary nor a login.
func runStatus(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("status", args, nil)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("status: unexpected arguments %q", args)
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	return printStatus(ctx, a.out, c)
}

func printStatus(ctx context.Context, out *printer, c *client.Client) error {
	replicas, err := c.Status(ctx)
	if err != nil {
		return err
	}
	for _, r := range replicas {
		out.emit(statusOf(r), humanStatus(r))
	}
	return nil
}
