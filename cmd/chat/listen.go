package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// runListen prints the user's messages as they arrive, queued ones first,
// until interrupted (exit status 0). A message is acknowledged, so counts
// as delivered, once printed. It never gives up on an outage: it says on
// stderr when the cluster becomes unavailable and when it is back.
func runListen(ctx context.Context, a *app, args []string) error {
	if a.session != nil {
		return usagef("listen: the session listens already: messages to you appear as they arrive")
	}
	args, err := a.parse("listen", args, nil)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("listen: unexpected arguments %q", args)
	}
	user, err := a.requireUser()
	if err != nil {
		return err
	}
	password, err := a.password(false)
	if err != nil {
		return err
	}
	c, done, err := a.newClient()
	if err != nil {
		return err
	}
	defer done()
	n := &notifier{a: a}
	if _, err := n.login(ctx, c, user, password); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	err = c.ListenWith(ctx, n.listenConfig(), func(m wire.Message) error {
		a.out.message(m)
		return nil
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil // interrupted: the normal way to stop
	}
	return lostAccount(err, user)
}

// lostAccount names the account in the error of a listener that could not
// log in again after a reconnect because the account is gone.
func lostAccount(err error, user string) error {
	return reword(err, wire.CodeUnknownUser, "the account %q no longer exists", user)
}

// notifier says on stderr when the cluster becomes unavailable to a
// long-lived client (listen, the interactive session) and when it is back:
// one line each.
type notifier struct {
	a *app
}

// outage reports that no primary serves, and why.
func (n *notifier) outage(why *client.UnavailableError) {
	fmt.Fprintf(n.a.stderr, "chat: the cluster is unavailable, still trying: %v\n", why)
}

// recovered reports that a primary serves again.
func (n *notifier) recovered(primary string, down time.Duration) {
	fmt.Fprintf(n.a.stderr, "chat: the cluster is available again (primary %s, after %v)\n", primary, down.Round(time.Second))
}

func (n *notifier) listenConfig() client.ListenConfig {
	return client.ListenConfig{Persist: true, OutageAfter: n.after(), OnOutage: n.outage, OnRecover: n.recovered}
}

// after is how long without a primary is an outage worth a line.
func (n *notifier) after() time.Duration {
	if n.a.outageAfter > 0 {
		return n.a.outageAfter
	}
	return client.DefaultOutageAfter
}

// login logs c in, as long as it takes: an outage (no primary within the
// failover timeout, or within the outage delay for the first attempt, so
// that the user hears early) is reported once and waited out; any other
// error is returned.
func (n *notifier) login(ctx context.Context, c *client.Client, user, password string) (int, error) {
	var since time.Time
	first := true
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if first {
			actx, cancel = context.WithTimeout(ctx, n.after())
		}
		unread, err := c.Login(actx, user, password)
		cancel()
		firstTimedOut := first && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded)
		first = false
		switch {
		case err == nil:
			if !since.IsZero() {
				n.recovered(c.Primary(), time.Since(since))
			}
			return unread, nil
		case ctx.Err() != nil:
			return 0, err
		case firstTimedOut:
			st, serr := c.Status(ctx)
			if serr != nil {
				return 0, serr
			}
			if !slices.ContainsFunc(st, client.Serving) {
				// A primary that serves is only slow (password hashing
				// under load, say): no outage to report.
				since = time.Now()
				n.outage(&client.UnavailableError{Replicas: st})
			}
		case errors.Is(err, client.ErrFailoverTimeout):
			if since.IsZero() {
				since = time.Now()
				var why *client.UnavailableError
				if !errors.As(err, &why) {
					why = &client.UnavailableError{Last: err}
				}
				n.outage(why)
			}
		default:
			return 0, loginError(err, user)
		}
	}
}
