package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// prompter asks the user for a password, without echo.
type prompter interface {
	readPassword(prompt string) (string, error)
}

// ttyPrompter returns a prompter on stdin when it is a terminal (prompts
// go to w), nil otherwise: a script must not hang on a prompt nobody sees.
func ttyPrompter(stdin io.Reader, w io.Writer) prompter {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &fdPrompter{f: f, w: w}
}

// fdPrompter prompts on a terminal that is not in raw mode.
type fdPrompter struct {
	f *os.File
	w io.Writer
}

func (p *fdPrompter) readPassword(prompt string) (string, error) {
	fmt.Fprint(p.w, prompt)
	b, err := term.ReadPassword(int(p.f.Fd()))
	fmt.Fprintln(p.w)
	return string(b), err
}

// termPrompter prompts on the interactive session's line editor.
type termPrompter struct {
	t *term.Terminal
}

func (p *termPrompter) readPassword(prompt string) (string, error) {
	return p.t.ReadPassword(prompt)
}

// errPasswordsDiffer is a registration whose two typed passwords differ.
var errPasswordsDiffer = errors.New("the two passwords differ; nothing registered")

// password returns the password: from --password-file (an explicit flag
// wins), else $CHAT_PASSWORD, else a no-echo prompt when there is a
// terminal (twice when confirm is set, as for a new account). Without any
// of them it is errNoPassword.
func (a *app) password(confirm bool) (string, error) {
	if a.g.passwordFile != "" {
		b, err := os.ReadFile(a.g.passwordFile)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		// One line: the trailing newline editors add is not part of it.
		p, _, _ := strings.Cut(string(b), "\n")
		p = strings.TrimSuffix(p, "\r")
		if p == "" {
			return "", fmt.Errorf("password file %s is empty", a.g.passwordFile)
		}
		return p, nil
	}
	if p := a.getenv("CHAT_PASSWORD"); p != "" {
		return p, nil
	}
	return a.askPassword(confirm)
}

// askPassword asks for the password on the terminal, twice if confirm.
func (a *app) askPassword(confirm bool) (string, error) {
	if a.prompt == nil {
		return "", errNoPassword
	}
	p, err := a.prompt.readPassword("Password: ")
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if p == "" {
		return "", errNoPassword
	}
	if confirm {
		again, err := a.prompt.readPassword("Password again: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if again != p {
			return "", errPasswordsDiffer
		}
	}
	return p, nil
}
