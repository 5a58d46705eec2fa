package main

import (
	"context"
	"flag"

	"github.com/replichat/replichat/chat/client"
)

// runHistory prints the user's messages: chat history [--with USER] [--limit N].
func runHistory(ctx context.Context, a *app, args []string) error {
	var (
		with  string
		limit int
	)
	args, err := a.parse("history", args, func(fs *flag.FlagSet) {
		fs.StringVar(&with, "with", "", "only messages exchanged with `user`")
		fs.IntVar(&limit, "limit", 0, "at most `N` messages (0: all)")
	})
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("history: unexpected arguments %q", args)
	}
	if limit < 0 {
		return usagef("history: --limit must not be negative")
	}
	c, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return printHistory(ctx, a.out, c, with, limit)
}

// printHistory prints up to limit (0: all) messages of the history,
// following the pages until the limit or the end.
func printHistory(ctx context.Context, out *printer, c *client.Client, with string, limit int) error {
	var after uint64
	for done := 0; limit == 0 || done < limit; {
		page := 0
		if limit > 0 {
			page = limit - done
		}
		msgs, next, err := c.History(ctx, with, after, page)
		if err != nil {
			return err
		}
		if limit > 0 && len(msgs) > limit-done {
			msgs = msgs[:limit-done]
		}
		for _, m := range msgs {
			out.message(m)
		}
		done += len(msgs)
		if next == 0 || len(msgs) == 0 {
			return nil
		}
		after = next
	}
	return nil
}
