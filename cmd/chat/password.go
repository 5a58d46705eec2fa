package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// password returns the password: from --password-file (an explicit flag
// wins), else $CHAT_PASSWORD, else a no-echo prompt when stdin is a
// terminal. Without any of them it is errNoPassword: a script must not hang
// on a prompt nobody sees.
func (a *app) password() (string, error) {
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
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errNoPassword
	}
	fmt.Fprint(a.stderr, "Password: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(b) == 0 {
		return "", errNoPassword
	}
	return string(b), nil
}
