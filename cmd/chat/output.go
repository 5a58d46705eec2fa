package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// printer writes results, as JSON Lines or as human-readable lines. It is
// safe for concurrent use: the interactive session prints incoming
// messages while a command prints its results.
type printer struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	// prompt is the interactive session's prompt when it reads plain
	// lines ("" otherwise: outside of it, and on a terminal, where the line
	// editor shows the prompt and redraws the line being typed itself).
	prompt string
	// tty is true when w is a terminal: a line printed while the prompt is
	// shown then erases and redraws it, so that incoming messages do not
	// garble the line being typed (much: typed characters are not redrawn).
	tty bool
	// promptShown is true while the prompt waits for a line.
	promptShown bool
}

// showPrompt prints the prompt.
func (p *printer) showPrompt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prompt != "" {
		fmt.Fprint(p.w, p.prompt)
		p.promptShown = true
	}
}

// promptGone records that the prompt's line has ended (the user typed a
// line, or the session ends), and reports whether the prompt was shown.
func (p *printer) promptGone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	shown := p.promptShown
	p.promptShown = false
	return shown
}

// text prints s and a newline as it is, also with --json: the session's
// help and greeting, for a person.
func (p *printer) text(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.write(nil, s, true)
}

// emit prints v as one JSON line with --json, else human (plus a newline)
// if it is not empty.
func (p *printer) emit(v any, human string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.write(v, human, !p.json)
}

// write is emit's body, human when asked for; p.mu is held.
func (p *printer) write(v any, human string, asHuman bool) {
	if p.promptShown {
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		} else {
			fmt.Fprintln(p.w)
		}
	}
	if !asHuman {
		enc := json.NewEncoder(p.w)
		enc.SetEscapeHTML(false)
		// Encode cannot fail for these plain structs; a write error has
		// nowhere better to go than the next write.
		_ = enc.Encode(v)
	} else if human != "" {
		fmt.Fprintln(p.w, human)
	}
	if p.promptShown {
		fmt.Fprint(p.w, p.prompt)
	}
}

// message prints a message object.
func (p *printer) message(m wire.Message) {
	p.emit(messageOf(m), humanMessage(m))
}

// messageJSON is CONTRACT.md's message object.
type messageJSON struct {
	ID     uint64 `json:"id"`
	From   string `json:"from"`
	To     string `json:"to"`
	Body   string `json:"body"`
	SentAt string `json:"sent_at"` // RFC 3339, UTC, with nanoseconds
}

func sentAt(m wire.Message) time.Time { return time.Unix(0, m.SentAt).UTC() }

func messageOf(m wire.Message) messageJSON {
	return messageJSON{ID: m.ID, From: m.From, To: m.To, Body: m.Body, SentAt: sentAt(m).Format(time.RFC3339Nano)}
}

func humanMessage(m wire.Message) string {
	return fmt.Sprintf("[%s] #%d %s -> %s: %s", sentAt(m).Local().Format(time.DateTime), m.ID, m.From, m.To, m.Body)
}

type userJSON struct {
	User string `json:"user"`
}

type userOnlineJSON struct {
	User   string `json:"user"`
	Online bool   `json:"online"`
}

type deletedJSON struct {
	Deleted []uint64 `json:"deleted"`
}

type accountDeletedJSON struct {
	User    string `json:"user"`
	Deleted bool   `json:"deleted"`
}

// statusJSON is CONTRACT.md's replica object. For a replica that is down
// the numbers are null: this client could not ask it, and another replica's
// view of it is no substitute (a backup does not know its peers' logs).
type statusJSON struct {
	ID      uint32  `json:"id"`
	Addr    string  `json:"addr"`
	Role    string  `json:"role"`
	Epoch   *uint64 `json:"epoch"`
	LogEnd  *uint64 `json:"log_end"`
	Commit  *uint64 `json:"commit"`
	InSync  bool    `json:"in_sync"`
	Waiting string  `json:"waiting,omitempty"`
	// DiskFull: the replica's disk is below its reserve (it takes no
	// writes); omitted otherwise.
	DiskFull string `json:"disk_full,omitempty"`
}

func statusOf(r wire.ReplicaStatus) statusJSON {
	s := statusJSON{ID: r.ID, Addr: r.Addr, Role: r.Role, InSync: r.InSync, Waiting: r.Waiting, DiskFull: r.DiskFull}
	if r.Role != wire.RoleDown {
		s.Epoch, s.LogEnd, s.Commit = &r.Epoch, &r.LogEnd, &r.Commit
	}
	return s
}

func humanStatus(r wire.ReplicaStatus) string {
	if r.Role == wire.RoleDown {
		s := fmt.Sprintf("%-3d %-22s %-8s", r.ID, r.Addr, r.Role)
		if r.Waiting != "" {
			s += " (" + r.Waiting + ")"
		}
		return s
	}
	s := fmt.Sprintf("%-3d %-22s %-8s epoch=%d log_end=%d commit=%d in_sync=%t", r.ID, r.Addr, r.Role, r.Epoch, r.LogEnd, r.Commit, r.InSync)
	if r.Waiting != "" {
		s += " waiting: " + r.Waiting
	}
	if r.DiskFull != "" && r.DiskFull != r.Waiting {
		s += " [" + r.DiskFull + "]"
	}
	return s
}
