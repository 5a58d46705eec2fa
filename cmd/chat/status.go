package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// Exit statuses of the status command beyond 0 (CONTRACT.md).
const (
	exitNoPrimary = 1 // no primary serves, every replica down included
	exitDegraded  = 3 // a primary serves, but a replica is down or out of sync
)

// runStatus prints one line per replica, as this client sees the cluster,
// and exits 0 when a primary serves and every replica is in sync, 1 when no
// primary serves, 3 when one serves but a replica is down or out of sync.
// It needs neither a primary nor a login.
func runStatus(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("status", args, nil)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("status: unexpected arguments %q", args)
	}
	c, done, err := a.newClient()
	if err != nil {
		return err
	}
	defer done()
	return printStatus(ctx, a.out, c)
}

// printStatus prints the replicas and returns the cluster's verdict: nil
// when it is healthy, else a *statusError.
func printStatus(ctx context.Context, out *printer, c *client.Client) error {
	replicas, err := c.Status(ctx)
	if err != nil {
		return err
	}
	for _, r := range replicas {
		out.emit(statusOf(r), humanStatus(r))
	}
	return verdict(replicas)
}

// verdict judges the cluster from its replicas' status (see runStatus).
func verdict(replicas []wire.ReplicaStatus) error {
	var primary bool
	var down, behind []string
	for _, r := range replicas {
		switch {
		case client.Serving(r):
			primary = true
		case r.Role == wire.RoleDown:
			down = append(down, fmt.Sprint(r.ID))
			continue
		}
		if !r.InSync {
			behind = append(behind, fmt.Sprint(r.ID))
		}
	}
	if !primary {
		return &statusError{code: exitNoPrimary, msg: "no primary serves"}
	}
	var why []string
	if len(down) > 0 {
		why = append(why, replicaList(down)+" down")
	}
	if len(behind) > 0 {
		why = append(why, replicaList(behind)+" out of sync")
	}
	if len(why) > 0 {
		return &statusError{code: exitDegraded, msg: "degraded: " + strings.Join(why, ", ")}
	}
	return nil
}

func replicaList(ids []string) string {
	if len(ids) == 1 {
		return "replica " + ids[0] + " is"
	}
	return "replicas " + strings.Join(ids, ", ") + " are"
}
