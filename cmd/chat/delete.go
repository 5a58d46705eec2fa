package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/replichat/replichat/chat/wire"
)

// runDeleteMessages deletes messages by id: chat delete-messages ID...
func runDeleteMessages(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("delete-messages", args, nil)
	if err != nil {
		return err
	}
	ids, err := parseIDs(args)
	if err != nil {
		return usagef("delete-messages: %v", err)
	}
	c, done, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer done()
	return deleteMessages(ctx, a.out, c.DeleteMessages, ids)
}

// deleteMessages deletes ids and prints the ids deleted.
func deleteMessages(ctx context.Context, out *printer, del func(context.Context, []uint64) ([]uint64, error), ids []uint64) error {
	deleted, err := del(ctx, ids)
	if err != nil {
		if len(ids) == 1 {
			err = reword(err, wire.CodeNotFound, "no message #%d of yours", ids[0])
			return reword(err, wire.CodeForbidden, "message #%d is not yours", ids[0])
		}
		err = reword(err, wire.CodeNotFound, "one of messages %s is not found (nothing deleted)", idString(ids))
		return reword(err, wire.CodeForbidden, "one of messages %s is not yours (nothing deleted)", idString(ids))
	}
	if deleted == nil {
		deleted = []uint64{} // [] in JSON, not null
	}
	out.emit(deletedJSON{Deleted: deleted}, fmt.Sprintf("deleted %d message(s): %s", len(deleted), idString(deleted)))
	return nil
}

func idString(ids []uint64) string {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(strs, " ")
}

// parseIDs parses message ids (at least one).
func parseIDs(args []string) ([]uint64, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("want at least one message ID")
	}
	ids := make([]uint64, 0, len(args))
	for _, s := range args {
		id, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("bad message id %q", s)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// runDeleteAccount deletes the user's account: chat delete-account.
func runDeleteAccount(ctx context.Context, a *app, args []string) error {
	args, err := a.parse("delete-account", args, nil)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("delete-account: unexpected arguments %q", args)
	}
	c, done, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer done()
	user, err := c.DeleteAccount(ctx)
	if err != nil {
		return err
	}
	a.out.emit(accountDeletedJSON{User: user, Deleted: true}, fmt.Sprintf("deleted account %s", user))
	return nil
}
