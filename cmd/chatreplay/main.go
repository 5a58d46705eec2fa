package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/cmd/internal/buildinfo"
	"github.com/replichat/replichat/eventlog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// exitCode maps run's error to the exit status. run has reported it already.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

// errUsage marks a command line that cannot be run (exit status 2).
var errUsage = errors.New("chatreplay: usage")

// options is the parsed command line.
type options struct {
	dataDir string
	// from and to bound the printed events; to == 0 means the log's end.
	// Invariant after parse: from >= 1 and (to == 0 or from <= to).
	from, to eventlog.Offset
	// types are the record types to print; empty means all.
	types []string
	user  string
	json  bool
	state bool
	// mem folds into a chat.MemStore instead of a temporary Badger
	// directory.
	mem bool
	// tmpDir is where the temporary Badger directory goes ("" means
	// os.TempDir()).
	tmpDir string
}

// run is the whole program. It reports an error itself (one line on stderr,
// or the usage) before returning it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseArgs(args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := replay(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "chatreplay:", oneLine(err.Error()))
		return err
	}
	return nil
}

// oneLine joins a multi-line error text (Badger's can be) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}

// parseArgs parses the command line. A problem is one line on stderr (with
// a hint to --help, not the whole usage) and errUsage; --help prints the
// usage on stdout and returns flag.ErrHelp, --version the version
// (flag.ErrHelp too: nothing more to do, exit status 0).
func parseArgs(args []string, stdout, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("chatreplay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		opts     options
		from, to uint64
		types    string
		version  bool
	)
	fs.BoolVar(&version, "version", false, "print the version and exit")
	fs.StringVar(&opts.dataDir, "data", "", "the replica's data `directory`, whose log is in DIR/log, or a bare log directory (required)")
	fs.Uint64Var(&from, "from", 1, "first `offset` to print")
	fs.Uint64Var(&to, "to", 0, "last `offset` to print, and the offset --state describes (default: the log's end)")
	fs.StringVar(&types, "type", "", "print only records of these `types`, comma-separated: send, chat.send, replica.epoch, ...")
	fs.StringVar(&opts.user, "user", "", "print only events involving accounts that had this `name`")
	fs.BoolVar(&opts.json, "json", false, "print JSON Lines")
	fs.BoolVar(&opts.state, "state", false, "print the chat state as of --to instead of the events")
	fs.BoolVar(&opts.mem, "mem", false, "fold the chat state in memory rather than in a temporary Badger directory")
	fs.StringVar(&opts.tmpDir, "tmp", "", "`directory` for the temporary Badger state (default: the system's)")
	usage := func(format string, a ...any) (options, error) {
		fmt.Fprintf(stderr, "chatreplay: "+format+" (see chatreplay --help)\n", a...)
		return opts, errUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: chatreplay --data DIR [--from OFFSET] [--to OFFSET] [--type TYPE] [--user NAME] [--json] [--state]")
			fmt.Fprintln(stdout, "\nflags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return opts, err
		}
		return usage("%v", err)
	}
	if version {
		fmt.Fprintln(stdout, buildinfo.Version("chatreplay"))
		return opts, flag.ErrHelp
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case opts.dataDir == "":
		return usage("--data is required")
	case from == 0:
		return usage("--from 0: offsets start at 1")
	case to != 0 && from > to:
		return usage("--from %d is after --to %d", from, to)
	}
	opts.from, opts.to = eventlog.Offset(from), eventlog.Offset(to)
	if types != "" {
		for t := range strings.SplitSeq(types, ",") {
			typ, err := normalizeType(strings.TrimSpace(t))
			if err != nil {
				return usage("--type: %v", err)
			}
			opts.types = append(opts.types, typ)
		}
	}
	return opts, nil
}

// chatTypes are the record types of chat events.
var chatTypes = []string{chat.TypeRegister, chat.TypeSend, chat.TypeDeliver, chat.TypeDeleteMessages, chat.TypeDeleteAccount}

// normalizeType turns a --type value into a record type: a full type (with
// a dot) is taken as is; a short name is a chat event's, with "-" allowed
// for "_" ("delete-messages").
func normalizeType(t string) (string, error) {
	if strings.Contains(t, ".") {
		return t, nil
	}
	full := chat.TypePrefix + strings.ReplaceAll(t, "-", "_")
	if !slices.Contains(chatTypes, full) {
		short := make([]string, len(chatTypes))
		for i, c := range chatTypes {
			short[i] = strings.TrimPrefix(c, chat.TypePrefix)
		}
		return "", fmt.Errorf("unknown type %q (chat events: %s; or a full type such as replica.epoch)", t, strings.Join(short, ", "))
	}
	return full, nil
}
