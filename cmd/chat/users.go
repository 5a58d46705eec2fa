package main

import (
	"context"
	"path"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// runUsers lists the accounts matching a pattern. It logs in when a user is
// given and lists anonymously otherwise.
func runUsers(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("users", args, nil)
	if err != nil {
		return err
	}
	if len(args) > 1 {
		return usagef("users: at most one PATTERN, got %q", args)
	}
	pattern := "*"
	if len(args) == 1 {
		pattern = args[0]
	}
	if _, err := path.Match(pattern, ""); err != nil {
		// The server would refuse it too; a usage error says so at once.
		return usagef("users: bad pattern %q: %v (wildcards: * ? [a-z])", pattern, err)
	}
	var (
		c    *client.Client
		done func()
	)
	if a.g.user != "" || a.session != nil {
		c, done, err = a.loggedIn(ctx)
	} else {
		c, done, err = a.newClient()
	}
	if err != nil {
		return err
	}
	defer done()
	return listUsers(ctx, a.out, c, pattern)
}

// listUsers prints every account matching pattern, following the pages.
func listUsers(ctx context.Context, out *printer, c *client.Client, pattern string) error {
	after := ""
	for {
		users, next, err := c.Users(ctx, pattern, after, 0)
		if err != nil {
			return err
		}
		for _, u := range users {
			out.emit(userOnlineJSON{User: u.Name, Online: u.Online}, humanUser(u))
		}
		if next == "" || len(users) == 0 {
			return nil
		}
		after = next
	}
}

func humanUser(u wire.UserInfo) string {
	if u.Online {
		return u.Name + " (online)"
	}
	return u.Name
}
