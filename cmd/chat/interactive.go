package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/wire"
)

// sessionHelp is the interactive session's help: the CLI's commands that
// make sense inside it, with the same names and arguments.
func sessionHelp() string {
	var b strings.Builder
	b.WriteString("commands (as on the command line, without the global flags):\n")
	for _, c := range commands() {
		switch c.name {
		case "register", "listen", "help":
			continue
		}
		fmt.Fprintf(&b, "  %-16s %-35s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(&b, "  %-16s %-35s %s\n", "help", "[COMMAND]", "this text, or a command's flags")
	fmt.Fprintf(&b, "  %-16s %-35s %s\n", "quit", "", "end the session (so do Ctrl-D and Ctrl-C)")
	b.WriteString("Messages to you are printed as they arrive. Up and Down recall earlier lines.")
	return b.String()
}

// lineSource reads the session's lines: the line editor on a terminal, or
// plain lines from a pipe.
type lineSource interface {
	ReadLine() (string, error)
}

// plainLines reads lines from a reader that is not a terminal.
type plainLines struct{ r *bufio.Reader }

func (p plainLines) ReadLine() (string, error) {
	line, err := p.r.ReadString('\n')
	if line != "" {
		// A last line without its newline still counts.
		return strings.TrimRight(line, "\r\n"), nil
	}
	return "", err
}

// sessionIO is how the session talks to its user.
type sessionIO struct {
	lines lineSource
	// editor is the line editor on a terminal, nil for plain lines.
	editor *term.Terminal
	// raw is where the editor writes, for the newline that ends the session.
	raw io.Writer
	// restore puts the terminal back as it was.
	restore func()
}

// openSession sets up the session's input and output: a line editor
// (golang.org/x/term's Terminal, in raw mode) when stdin and stdout are a
// terminal or a.terminal is set, plain lines otherwise.
func (a *app) openSession() (*sessionIO, error) {
	if a.terminal != nil {
		return &sessionIO{editor: term.NewTerminal(a.terminal, ""), raw: a.terminal, restore: func() {}}, nil
	}
	in, inOK := a.stdin.(*os.File)
	out, outOK := a.stdout.(*os.File)
	if !inOK || !outOK || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return &sessionIO{lines: plainLines{bufio.NewReader(a.stdin)}, restore: func() {}}, nil
	}
	state, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return nil, fmt.Errorf("set up the terminal: %w", err)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{in, out}
	t := term.NewTerminal(rw, "")
	resize := func() {
		// A terminal that reports no size (0x0, as a bare pty does) keeps
		// the editor's default of 80 columns: a width of 0 would wrap at
		// every character.
		if w, h, err := term.GetSize(int(out.Fd())); err == nil && w > 0 && h > 0 {
			_ = t.SetSize(w, h)
		}
	}
	resize()
	// Follow the window's size, so that long lines wrap where it does.
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				resize()
			case <-stop:
				return
			}
		}
	}()
	restore := func() {
		signal.Stop(winch)
		close(stop)
		_ = term.Restore(int(in.Fd()), state)
	}
	return &sessionIO{editor: t, raw: out, restore: restore}, nil
}

// runInteractive is the session chat starts without a command: it logs in
// (asking for the user name when none is given, and offering to create the
// account on a terminal), listens, and runs the commands typed at its
// prompt until quit, end of input (Ctrl-D), Ctrl-C or interrupt. Like
// listen, it rides out an outage of any length.
func runInteractive(ctx context.Context, a *app, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	sio, err := a.openSession()
	if err != nil {
		return err
	}
	defer sio.restore()
	if sio.editor != nil {
		// Everything goes through the editor, which redraws the line being
		// typed after each output.
		stdout, stderr, prompt := a.stdout, a.stderr, a.prompt
		a.stdout, a.stderr, a.prompt = sio.editor, sio.editor, &termPrompter{t: sio.editor}
		a.out.w = sio.editor
		sio.lines = sio.editor
		defer func() { a.stdout, a.stderr, a.prompt, a.out.w = stdout, stderr, prompt, stdout }()
	}
	// endLine ends the line the user was typing on, when the session ends
	// with it still on screen (Ctrl-C, Ctrl-D, interrupt).
	endLine := func() {
		if sio.editor != nil {
			fmt.Fprint(sio.raw, "\r\n")
		} else if a.out.promptGone() {
			fmt.Fprintln(a.stdout)
		}
	}

	c, err := a.sessionLogin(ctx, sio)
	if err != nil {
		if ctx.Err() != nil {
			endLine()
			return nil
		}
		return err
	}
	defer c.Close()
	a.session = c
	defer func() { a.session = nil }()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, below: the goroutines below then return
	defer cancel()

	user := c.User()
	prompt := user + "> "
	if a.out.json {
		prompt = ""
	}
	if sio.editor != nil {
		sio.editor.SetPrompt(prompt)
	} else {
		a.out.prompt, a.out.tty = prompt, isTerminal(a.stdout)
	}
	n := &notifier{a: a}
	listenErr := make(chan error, 1)
	wg.Go(func() {
		listenErr <- c.ListenWith(ctx, n.listenConfig(), func(m wire.Message) error {
			a.out.message(m)
			return nil
		})
	})
	// The line reader reads a line when asked (next), so that the line
	// editor shows its prompt only once the previous command is done: a
	// session that ends leaves no prompt behind. It ends at end of input;
	// a read from a terminal cannot be interrupted, so on interrupt it is
	// left blocked until the process exits, which follows at once.
	lines := make(chan string)
	next := make(chan struct{}, 1)
	go readLines(ctx, sio.lines, next, lines)

	for {
		a.out.showPrompt()
		next <- struct{}{}
		select {
		case line, ok := <-lines:
			if !ok {
				endLine()
				return nil
			}
			a.out.promptGone()
			quit, err := a.execLine(ctx, line)
			if err != nil {
				a.reportLine(err)
			}
			if quit {
				return nil
			}
		case err := <-listenErr:
			if ctx.Err() != nil {
				endLine()
				return nil
			}
			endLine()
			return lostAccount(err, user)
		case <-ctx.Done():
			endLine()
			return nil
		}
	}
}

// sessionLogin asks for what is missing (the user name, the password) and
// logs in, riding out an outage. On a terminal, an unknown user is offered
// to create the account, with the password typed again.
func (a *app) sessionLogin(ctx context.Context, sio *sessionIO) (*client.Client, error) {
	user := a.g.user
	if user == "" {
		if sio.editor != nil {
			sio.editor.SetPrompt("User: ")
		} else {
			fmt.Fprint(a.stderr, "User: ")
		}
		line, err := sio.lines.ReadLine()
		user = strings.TrimSpace(line)
		if user == "" {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read user name: %w", err)
			}
			return nil, usagef("no user name given")
		}
	}
	typed := a.g.passwordFile == "" && a.getenv("CHAT_PASSWORD") == ""
	password, err := a.password(false)
	if err != nil {
		return nil, err
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	n := &notifier{a: a}
	unread, err := n.login(ctx, c, user, password)
	var ce *client.Error
	if err != nil && sio.editor != nil && errors.As(err, &ce) && ce.Code == wire.CodeUnknownUser {
		unread, err = a.offerRegister(ctx, sio.editor, c, n, user, password, typed)
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if !a.out.json {
		a.out.text(fmt.Sprintf("Logged in as %s (%d unread). Type help for commands.", user, unread))
	}
	return c, nil
}

// offerRegister asks whether to create the unknown account user, and does
// so (after the password was typed again, if it was typed) and logs in.
func (a *app) offerRegister(ctx context.Context, t *term.Terminal, c *client.Client, n *notifier, user, password string, typed bool) (int, error) {
	t.SetPrompt(fmt.Sprintf("There is no account %q. Create it? [y/N] ", user))
	answer, err := t.ReadLine()
	if err != nil || !strings.EqualFold(strings.TrimSpace(answer), "y") && !strings.EqualFold(strings.TrimSpace(answer), "yes") {
		return 0, usagef("no account %q; nothing created", user)
	}
	if typed {
		again, err := t.ReadPassword("Password again: ")
		if err != nil {
			return 0, fmt.Errorf("read password: %w", err)
		}
		if again != password {
			return 0, errPasswordsDiffer
		}
	}
	if err := register(ctx, c, user, password); err != nil {
		return 0, err
	}
	a.out.emit(userJSON{User: user}, fmt.Sprintf("registered %s", user))
	return n.login(ctx, c, user, password)
}

// readLines reads a line of src each time next is signalled and sends it
// to lines; it closes lines at the end of input (Ctrl-D or Ctrl-C on a
// terminal).
func readLines(ctx context.Context, src lineSource, next <-chan struct{}, lines chan<- string) {
	defer close(lines)
	for {
		select {
		case <-next:
		case <-ctx.Done():
			return
		}
		line, err := src.ReadLine()
		if err != nil {
			return
		}
		select {
		case lines <- line:
		case <-ctx.Done():
			return
		}
	}
}

// execLine runs one command line of the session, with the CLI's command
// names and arguments; quit ends the session.
func (a *app) execLine(ctx context.Context, line string) (quit bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return false, nil
	}
	name, args := f[0], f[1:]
	switch name {
	case "quit", "exit":
		return true, nil
	case "help", "?":
		if len(args) == 0 {
			a.out.text(sessionHelp())
			return false, nil
		}
		name, args = args[0], []string{"-h"}
	}
	cmd, ok := findCommand(name)
	if !ok {
		if alt, ok := oldSessionNames[name]; ok {
			return false, fmt.Errorf("unknown command %q: it is %s now (type help)", name, alt)
		}
		return false, fmt.Errorf("unknown command %q (type help)", name)
	}
	err = cmd.run(ctx, a, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return false, nil
	case err == nil && name == "delete-account":
		return true, nil // the session's account is gone
	}
	return false, err
}

// oldSessionNames are the session's former command names, to point to the
// CLI's.
var oldSessionNames = map[string]string{
	"delete": "delete-messages ID...",
}

// reportLine reports a failed command of the session, which goes on.
func (a *app) reportLine(err error) {
	code, msg := a.describe(err)
	if a.out.json {
		var se *statusError
		if !errors.As(err, &se) {
			a.out.emit(errorJSON{Error: errorBody{Code: code, Message: msg}}, "")
		}
		return
	}
	fmt.Fprintf(a.stderr, "error: %s\n", msg)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
