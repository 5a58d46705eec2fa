package main

import (
	"context"
	"fmt"
)

// runRegister creates the account --user with the password.
func runRegister(ctx context.Context, a *app, args []string) error {
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
	password, err := a.password()
	if err != nil {
		return err
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Register(ctx, user, password); err != nil {
		return err
	}
	a.out.emit(userJSON{User: user}, fmt.Sprintf("registered %s", user))
	return nil
}
