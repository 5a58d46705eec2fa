package main

import (
	"context"

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
	var c *client.Client
	if a.g.user != "" {
		c, err = a.loggedIn(ctx)
	} else {
		c, err = a.newClient()
	}
	if err != nil {
		return err
	}
	defer c.Close()
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
