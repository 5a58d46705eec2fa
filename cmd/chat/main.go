package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/cmd/internal/buildinfo"
)

// defaultServers is where a local three-replica cluster listens.
const defaultServers = "127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// exitCode maps run's error to the exit status: 2 for usage errors, the
// status command's own code (3: degraded) for its verdict, 1 for the
// others. run has already reported the error.
func exitCode(err error) int {
	var (
		ue *usageError
		se *statusError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &se):
		return se.code
	}
	return 1
}

// run is the whole program: it parses args, runs the command, and reports
// an error (on stdout as JSON with --json, else on stderr) before returning
// it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return a.main(ctx, args)
}

// app is one run of the program: its streams, environment and flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	g   globals
	out *printer

	// session is the interactive session's client, logged in, that its
	// commands share; nil outside of a session.
	session *client.Client
	// terminal, when set, is the interactive session's terminal instead of
	// stdin and stdout (tests drive the line editor through it); it is not
	// put into raw mode.
	terminal io.ReadWriter
	// prompt reads a password without echo from the user; nil when there
	// is no terminal to ask on.
	prompt prompter
	// outageAfter is how long listen and the session go without a primary
	// before they say so; 0 means client.DefaultOutageAfter (tests shorten
	// it).
	outageAfter time.Duration
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	servers      string
	user         string
	json         bool
	passwordFile string
	timeout      time.Duration
	verbose      bool
	version      bool
}

// bind defines the global flags on fs, with their current values as
// defaults, so that a command's flag set may set them again.
func (g *globals) bind(fs *flag.FlagSet) {
	fs.StringVar(&g.servers, "servers", g.servers, "comma-separated `host:port` list of the replicas; $CHAT_SERVERS when not given")
	fs.StringVar(&g.user, "user", g.user, "user `name`; $CHAT_USER when not given")
	fs.BoolVar(&g.json, "json", g.json, "print results as JSON Lines on stdout")
	fs.StringVar(&g.passwordFile, "password-file", g.passwordFile, "read the password from `file` (else $CHAT_PASSWORD, else a prompt on a terminal)")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "how long to look for a primary before giving up")
	fs.BoolVar(&g.verbose, "v", g.verbose, "log connections and failovers on stderr")
	fs.BoolVar(&g.version, "version", g.version, "print the version and exit")
}

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis of the arguments after the name
	summary string
	run     func(ctx context.Context, a *app, args []string) error
}

// commands lists the subcommands, in the order "chat help" shows them.
func commands() []command {
	return []command{
		{"register", "", "create the account --user with the password", runRegister},
		{"users", "[PATTERN]", "list accounts matching a shell-style wildcard (default *)", runUsers},
		{"send", "TO TEXT...", "send a message", runSend},
		{"read", "[--limit N]", "deliver your queued messages, oldest first", runRead},
		{"history", "[--with USER] [--limit N | --last N]", "your messages, sent and received, oldest first (--last: the newest N)", runHistory},
		{"delete-messages", "ID...", "delete your messages by id", runDeleteMessages},
		{"delete-account", "", "delete your account", runDeleteAccount},
		{"listen", "", "print your messages as they arrive, until interrupted", runListen},
		{"status", "", "the cluster as this client sees it", runStatus},
		{"help", "[COMMAND]", "show this help, or a command's", runHelp},
	}
}

func findCommand(name string) (command, bool) {
	cmds := commands()
	i := slices.IndexFunc(cmds, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return cmds[i], true
}

func (a *app) main(ctx context.Context, args []string) error {
	a.g = globals{
		servers: a.getenv("CHAT_SERVERS"),
		user:    a.getenv("CHAT_USER"),
		timeout: client.DefaultFailoverTimeout,
	}
	if a.g.servers == "" {
		a.g.servers = defaultServers
	}
	a.out = &printer{w: a.stdout}
	if a.prompt == nil {
		a.prompt = ttyPrompter(a.stdin, a.stderr)
	}
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.g.bind(fs)
	err := fs.Parse(args)
	a.out.json = a.g.json
	switch {
	case errors.Is(err, flag.ErrHelp):
		a.usage(a.stdout)
		return nil
	case err != nil:
		return a.report(usagef("%v", err))
	case a.g.version:
		fmt.Fprintln(a.stdout, buildinfo.Version("chat"))
		return nil
	}

	var cmd command
	rest := fs.Args()
	if len(rest) == 0 {
		cmd = command{name: "", run: runInteractive}
	} else {
		var ok bool
		if cmd, ok = findCommand(rest[0]); !ok {
			return a.report(usagef("unknown command %q (see chat help)", rest[0]))
		}
		rest = rest[1:]
	}
	err = cmd.run(ctx, a, rest)
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersion) {
		return nil
	}
	return a.report(err)
}

// errVersion ends a command whose flags asked for --version, once printed.
var errVersion = errors.New("version printed")

// parse parses the arguments of command name with its flags (defined by
// define) and the global ones, and returns the positional arguments. Flags
// may come anywhere among them (CONTRACT.md: global flags may also follow
// the command); after "--" everything is positional. A -h prints the
// command's usage and returns flag.ErrHelp. In the interactive session the
// global flags are not accepted: the session has its own.
func (a *app) parse(name string, args []string, define func(fs *flag.FlagSet)) ([]string, error) {
	cmd, _ := findCommand(name)
	fs := flag.NewFlagSet("chat "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if define != nil {
		define(fs)
	}
	if a.session == nil {
		a.g.bind(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if a.session == nil {
		// (In the session the printer is shared with the listener, and
		// --json cannot change.)
		a.out.json = a.g.json
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(a.stdout, "usage: chat %s %s\n\n%s.\n\nflags:\n", cmd.name, cmd.args, upperFirst(cmd.summary))
		fs.SetOutput(a.stdout)
		fs.PrintDefaults()
		return nil, flag.ErrHelp
	case err != nil:
		return nil, usagef("%s: %v", name, err)
	case a.g.version:
		fmt.Fprintln(a.stdout, buildinfo.Version("chat"))
		return nil, errVersion
	}
	return pos, nil
}

// parseInterspersed parses args with fs, taking flags wherever they are
// among the positional arguments, which it returns in order. After "--"
// every argument is positional, even one that starts with "-".
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			// The flag package stopped at "--": the rest is literal.
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (a *app) usage(w io.Writer) {
	fmt.Fprint(w, `usage: chat [--servers host:port,...] [--user NAME] [--json] [--password-file F] COMMAND [ARGS]

Without a command, chat starts an interactive session.

commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %-35s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprint(w, `
global flags (also accepted after the command; after "--" every argument is text):
`)
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(w)
	g := a.g
	g.bind(fs)
	fs.PrintDefaults()
	fmt.Fprint(w, `
The password comes from --password-file, else $CHAT_PASSWORD, else a no-echo
prompt on a terminal. Exit status: 0 success, 1 error, 2 usage error; status
exits 1 when no primary serves and 3 when a replica is down or out of sync.
listen and the interactive session ride out outages of any length.
`)
}

func runHelp(_ context.Context, a *app, args []string) error {
	if len(args) == 0 {
		a.usage(a.stdout)
		return nil
	}
	cmd, ok := findCommand(args[0])
	if !ok {
		return usagef("unknown command %q", args[0])
	}
	if cmd.name == "help" {
		a.usage(a.stdout)
		return nil
	}
	return cmd.run(context.Background(), a, []string{"-h"})
}

// config is the client configuration the flags describe. A malformed
// --servers is a usage error at once, not a failover timeout later.
func (a *app) config() (client.Config, error) {
	var servers []string
	for s := range strings.SplitSeq(a.g.servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if err := client.CheckAddr(s); err != nil {
				return client.Config{}, usagef("--servers: %v", err)
			}
			servers = append(servers, s)
		}
	}
	if len(servers) == 0 {
		return client.Config{}, usagef("--servers lists no server")
	}
	if a.g.timeout <= 0 {
		return client.Config{}, usagef("--timeout must be positive")
	}
	logger := slog.New(slog.DiscardHandler)
	if a.g.verbose {
		logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return client.Config{Servers: servers, FailoverTimeout: a.g.timeout, Logger: logger}, nil
}

// newClient returns a client that has not connected yet (the session's,
// in the interactive session), and the function that releases it.
func (a *app) newClient() (*client.Client, func(), error) {
	if a.session != nil {
		return a.session, func() {}, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Close() }, nil
}

// loggedIn returns a client logged in as --user (the session's, in the
// interactive session), and the function that releases it.
func (a *app) loggedIn(ctx context.Context) (*client.Client, func(), error) {
	if a.session != nil {
		return a.session, func() {}, nil
	}
	user, err := a.requireUser()
	if err != nil {
		return nil, nil, err
	}
	password, err := a.password(false)
	if err != nil {
		return nil, nil, err
	}
	c, done, err := a.newClient()
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Login(ctx, user, password); err != nil {
		done()
		return nil, nil, loginError(err, user)
	}
	return c, done, nil
}

func (a *app) requireUser() (string, error) {
	if a.g.user == "" {
		return "", usagef("--user (or $CHAT_USER) is required")
	}
	return a.g.user, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
