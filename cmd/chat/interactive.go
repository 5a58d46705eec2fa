package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

const interactiveHelp = `commands:
  send TO TEXT...        send a message
  read [N]               deliver your queued messages (at most N)
  history [USER] [N]     your messages (with USER; the first N)
  users [PATTERN]        list accounts
  delete ID...           delete your messages by id
  delete-account         delete your account and end the session
  status                 the cluster as this client sees it
  help                   this text
  quit                   end the session (so does end of input)
Messages to you are printed as they arrive.`

// runInteractive is the session chat starts without a command: it logs in
// (asking for the user name when none is given), listens, and runs the
// commands typed at its prompt until quit, end of input or interrupt.
func runInteractive(ctx context.Context, a *app, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	in := bufio.NewReader(a.stdin)
	user := a.g.user
	if user == "" {
		fmt.Fprint(a.stderr, "User: ")
		line, err := in.ReadString('\n')
		user = strings.TrimSpace(line)
		if user == "" {
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read user name: %w", err)
			}
			return usagef("no user name given")
		}
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
	unread, err := c.Login(ctx, user, password)
	if err != nil {
		return err
	}
	if !a.out.json {
		fmt.Fprintf(a.stdout, "Logged in as %s (%d unread). Type help for commands.\n", user, unread)
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, below: the goroutines below then return
	defer cancel()

	a.out.prompt, a.out.tty = user+"> ", isTerminal(a.stdout)
	if a.out.json {
		a.out.prompt = ""
	}
	listenErr := make(chan error, 1)
	wg.Go(func() {
		listenErr <- c.Listen(ctx, func(m wire.Message) error {
			a.out.message(m)
			return nil
		})
	})
	// The line reader ends at end of input; a read from a terminal cannot
	// be interrupted, so on interrupt it is left blocked until the process
	// exits, which follows at once.
	lines := make(chan string)
	go readLines(ctx, in, lines)

	for {
		a.out.showPrompt()
		select {
		case line, ok := <-lines:
			a.out.promptGone()
			if !ok {
				return nil
			}
			quit, err := a.execLine(ctx, c, line)
			if err != nil {
				a.reportLine(err)
			}
			if quit {
				return nil
			}
		case err := <-listenErr:
			a.out.promptGone()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen: %w", err)
		case <-ctx.Done():
			a.out.promptGone()
			return nil
		}
	}
}

// readLines sends each line of in to lines, and closes lines at the end of
// input.
func readLines(ctx context.Context, in *bufio.Reader, lines chan<- string) {
	defer close(lines)
	for {
		line, err := in.ReadString('\n')
		if line != "" {
			select {
			case lines <- strings.TrimRight(line, "\r\n"):
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// execLine runs one command line of the session; quit ends the session.
func (a *app) execLine(ctx context.Context, c *client.Client, line string) (quit bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return false, nil
	}
	cmd, args := f[0], f[1:]
	switch cmd {
	case "send":
		if len(args) < 2 {
			return false, errors.New("usage: send TO TEXT...")
		}
		m, err := c.Send(ctx, args[0], strings.Join(args[1:], " "))
		if err != nil {
			return false, err
		}
		a.out.message(m)
	case "read":
		n, err := optionalCount(args, "read [N]")
		if err != nil {
			return false, err
		}
		return false, readMessages(ctx, a.out, c, n)
	case "history":
		var with string
		if len(args) > 0 {
			if _, err := strconv.Atoi(args[0]); err != nil {
				with, args = args[0], args[1:]
			}
		}
		n, err := optionalCount(args, "history [USER] [N]")
		if err != nil {
			return false, err
		}
		return false, printHistory(ctx, a.out, c, with, n)
	case "users":
		if len(args) > 1 {
			return false, errors.New("usage: users [PATTERN]")
		}
		pattern := "*"
		if len(args) == 1 {
			pattern = args[0]
		}
		return false, listUsers(ctx, a.out, c, pattern)
	case "delete", "delete-messages":
		ids, err := parseIDs(args)
		if err != nil {
			return false, fmt.Errorf("usage: delete ID...: %w", err)
		}
		return false, deleteMessages(ctx, a.out, c.DeleteMessages, ids)
	case "delete-account":
		user, err := c.DeleteAccount(ctx)
		if err != nil {
			return false, err
		}
		a.out.emit(accountDeletedJSON{User: user, Deleted: true}, fmt.Sprintf("deleted account %s", user))
		return true, nil
	case "status":
		return false, printStatus(ctx, a.out, c)
	case "help", "?":
		a.out.emit(nil, interactiveHelp)
	case "quit", "exit":
		return true, nil
	default:
		return false, fmt.Errorf("unknown command %q (type help)", cmd)
	}
	return false, nil
}

// optionalCount parses the optional count N of read and history.
func optionalCount(args []string, usage string) (int, error) {
	switch len(args) {
	case 0:
		return 0, nil
	case 1:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("usage: %s: bad count %q", usage, args[0])
		}
		return n, nil
	}
	return 0, fmt.Errorf("usage: %s", usage)
}

// reportLine reports a failed command of the session, which goes on.
func (a *app) reportLine(err error) {
	if a.out.json {
		code, msg := errorCode(err)
		a.out.emit(errorJSON{Error: errorBody{Code: code, Message: msg}}, "")
		return
	}
	fmt.Fprintf(a.stderr, "error: %v\n", err)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
