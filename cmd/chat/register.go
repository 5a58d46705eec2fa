package main

import (
	"context"
	"fmt"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// runRegister creates the account --user with the password (asked twice
// on a terminal).
func runRegister(ctx context.Context, a *app, args []string) error {
	if a.session != nil {
		return usagef("register: you are logged in as %s; to create another account: chat --user NAME register", a.session.User())
	}
	args, err := a.parse("register", args, nil)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("register: unexpected arguments %q", args)
	}
	user, err := a.requireUser()
	if err != nil {
		return err
	}
	password, err := a.password(true)
	if err != nil {
		return err
	}
	c, done, err := a.newClient()
	if err != nil {
		return err
	}
	defer done()
	if err := register(ctx, c, user, password); err != nil {
		return err
	}
	a.out.emit(userJSON{User: user}, fmt.Sprintf("registered %s", user))
	return nil
}

// register creates the account user, naming it in the errors.
func register(ctx context.Context, c *client.Client, user, password string) error {
	err := c.Register(ctx, user, password)
	err = reword(err, wire.CodeUserExists, "user %q already exists", user)
	return reword(err, wire.CodeInvalidName, "invalid user name %q: want 1 to 32 of A-Z a-z 0-9 _ . -", user)
}
