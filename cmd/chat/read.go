package main

import (
	"context"
	"flag"

	"github.com/replichat/replichat/chat/client"
)

// runRead delivers the queued messages: chat read [--limit N].
func runRead(ctx context.Context, a *app, args []string) error {
	var limit int
	args, err := a.parse("read", args, func(fs *flag.FlagSet) {
		fs.IntVar(&limit, "limit", 0, "deliver at most `N` messages (0: all)")
	})
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("read: unexpected arguments %q", args)
	}
	if limit < 0 {
		return usagef("read: --limit must not be negative")
	}
	c, done, err := a.loggedIn(ctx)
	if err != nil {
		return err
	}
	defer done()
	return readMessages(ctx, a.out, c, limit)
}

// readMessages delivers and prints up to limit (0: all) queued messages,
// one server page at a time.
func readMessages(ctx context.Context, out *printer, c *client.Client, limit int) error {
	for done := 0; limit == 0 || done < limit; {
		page := 0 // the server's page size
		if limit > 0 {
			page = limit - done
		}
		msgs, err := c.Read(ctx, page)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			out.message(m)
		}
		done += len(msgs)
	}
	return nil
}
