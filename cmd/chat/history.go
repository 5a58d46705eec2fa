package main

import (
	"context"
	"flag"
	"slices"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// runHistory prints the user's messages, oldest first:
// chat history [--with USER] [--limit N | --last N].
func runHistory(ctx context.Context, a *app, args []string) error {
	var (
		with        string
		limit, last int
	)
	args, err := a.parse("history", args, func(fs *flag.FlagSet) {
		fs.StringVar(&with, "with", "", "only messages exchanged with `user`")
		fs.IntVar(&limit, "limit", 0, "the oldest `N` messages at most (0: all)")
		fs.IntVar(&last, "last", 0, "the newest `N` messages instead, still printed oldest first")
	})
	if err != nil {
		return err
	}
	switch {
	case len(args) > 0:
		return usagef("history: unexpected arguments %q", args)
	case limit < 0:
		return usagef("history: --limit must not be negative")
	case last < 0:
		return usagef("history: --last must not be negative")
	case limit > 0 && last > 0:
		return usagef("history: --limit and --last exclude each other")
	}
	c, done, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer done()
	if last > 0 {
		err = printHistoryLast(ctx, a.out, c, with, last)
	} else {
		err = printHistory(ctx, a.out, c, with, limit)
	}
	return reword(err, wire.CodeUnknownUser, "unknown user %q", with)
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

// printHistoryLast prints the newest n messages of the history, oldest
// first: it pages back from the end until it has them (or the history's
// start), then prints.
func printHistoryLast(ctx context.Context, out *printer, c *client.Client, with string, n int) error {
	var (
		pages  [][]wire.Message
		got    int
		before uint64
	)
	for got < n {
		msgs, prev, err := c.HistoryLast(ctx, with, before, n-got)
		if err != nil {
			return err
		}
		if len(msgs) > n-got {
			msgs = msgs[len(msgs)-(n-got):]
		}
		pages = append(pages, msgs)
		got += len(msgs)
		if prev == 0 || len(msgs) == 0 {
			break
		}
		before = prev
	}
	slices.Reverse(pages)
	for _, page := range pages {
		for _, m := range page {
			out.message(m)
		}
	}
	return nil
}
