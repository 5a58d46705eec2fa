package main

import (
	"encoding/hex"
	"fmt"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// printState prints every live account of st (only the one named user, if
// user is not empty) in name order, then a summary of the whole state.
func printState(p *printer, st *chat.State, user string) error {
	var (
		accounts int
		after    string
	)
	for {
		page, next, err := st.Users("*", after, chat.MaxQueryLimit)
		if err != nil {
			return err
		}
		for _, u := range page {
			accounts++
			if user != "" && u.Name != user {
				continue
			}
			delivered, err := countDelivered(st, u.ID)
			if err != nil {
				return err
			}
			if err := p.line([]field{{"user", u.Name}, {"uid", u.ID}, {"created", recordTime(u.Created)},
				{"queued", u.Unread}, {"delivered", delivered}, {"history", u.History}}); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	digest, err := st.Digest()
	if err != nil {
		return err
	}
	return p.line([]field{{"applied", uint64(st.Applied())}, {"accounts", uint64(accounts)}, {"digest", hex.EncodeToString(digest)}})
}

// countDelivered counts the messages in uid's history that it received and
// that were delivered to it, a page at a time.
func countDelivered(st *chat.State, uid uint64) (uint64, error) {
	var (
		n     uint64
		after eventlog.Offset
	)
	for {
		page, next, err := st.History(uid, "", after, chat.MaxQueryLimit)
		if err != nil {
			return 0, err
		}
		for _, m := range page {
			if m.ToUID == uid && m.Delivered {
				n++
			}
		}
		if next == 0 {
			return n, nil
		}
		after = next
	}
}

// line prints fields as a JSON object or as "key=value  ..." (a leading
// "user" field as its bare value, the line's subject).
func (p *printer) line(fields []field) error {
	if p.json {
		return p.jsonLine(fields)
	}
	s := ""
	for i, f := range fields {
		if i > 0 {
			s += "  "
		}
		if i == 0 && f.key == "user" {
			s += humanValue(f.val)
			continue
		}
		s += f.key + "=" + humanValue(f.val)
	}
	_, err := fmt.Fprintln(p.w, s)
	return err
}
