package e2e

// The chaos tests' verdict (chaos_test.go): every send a chaos sender made,
// checked against the users' histories and a replica's log of applied
// events, counted, with the first examples of each violation.

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stretchr/testify/assert"

	"github.com/replichat/replichat/chat/wire"
)

// chaosReport counts what analyzeChaos found.
type chaosReport struct {
	// What the senders learned.
	Acked, Definite, Unknown, InFlight int
	// Unknown-outcome sends found applied (allowed, at most once).
	UnknownApplied int
	// Violations, from the users' histories: acknowledged sends absent
	// from the sender's or the recipient's history; present under another
	// id; present more than once (any send); sends refused with a definite
	// error that are present; messages nobody sent (or in the wrong
	// user's history); unknown-outcome sends in one history and not the
	// other.
	Missing, WrongID, Duplicated, DefiniteApplied, Phantoms, Partial int
	// The same, from replica 0's log (chatreplay: applied sends, result
	// ok), and disagreements between the log and the histories. Requests
	// or message ids applied twice count as LogDuplicated.
	LogMissing, LogWrongID, LogDuplicated, LogDefinite, LogPhantoms, LogVsHistory int
	// Acks whose message is not the one sent (wrong body, from or to).
	BadAcks int
	// DefiniteCodes counts the definite errors by code.
	DefiniteCodes map[wire.Code]int
	// OrderInversions counts messages that arrived before an earlier send
	// of the same sender to the same recipient. Informational: DESIGN.md
	// section 3 requires per-sender order (invariant 8) only under
	// fail-stop, not across the forks these faults cause.
	OrderInversions int
	// What the forks did (informational, for the README's fault model):
	// re-submitted sends in the log by their result (applied: it had been
	// acknowledged, or was in flight, on the losing side only; duplicate:
	// the winning side had it too), and the forks the replicas logged.
	ResubmittedApplied, ResubmittedDuplicate, ResubmittedRejected, Forks int

	examples map[string][]string
}

func (r *chaosReport) example(kind, format string, args ...any) {
	if r.examples == nil {
		r.examples = make(map[string][]string)
	}
	if len(r.examples[kind]) < 5 {
		r.examples[kind] = append(r.examples[kind], fmt.Sprintf(format, args...))
	}
}

func (r chaosReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "acked %d, definite %d, unknown %d (applied %d), in flight %d; "+
		"missing %d, wrong id %d, duplicated %d, definite applied %d, phantoms %d, partial %d; "+
		"log: missing %d, wrong id %d, duplicated %d, definite applied %d, phantoms %d, vs history %d; "+
		"bad acks %d; order inversions %d (informational); definite errors by code %v; "+
		"forks %d, re-submitted sends applied %d, duplicate %d, rejected %d",
		r.Acked, r.Definite, r.Unknown, r.UnknownApplied, r.InFlight,
		r.Missing, r.WrongID, r.Duplicated, r.DefiniteApplied, r.Phantoms, r.Partial,
		r.LogMissing, r.LogWrongID, r.LogDuplicated, r.LogDefinite, r.LogPhantoms, r.LogVsHistory,
		r.BadAcks, r.OrderInversions, r.DefiniteCodes,
		r.Forks, r.ResubmittedApplied, r.ResubmittedDuplicate, r.ResubmittedRejected)
	kinds := make([]string, 0, len(r.examples))
	for k := range r.examples {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n  first %s: %s", k, strings.Join(r.examples[k], "; "))
	}
	return b.String()
}

// analyzeChaos checks every send against the users' histories and the log
// of applied events, and counts what it finds; check then fails a test for
// each kind of violation (DESIGN.md invariants 1-3 under partitions):
//
//   - an acknowledged send is present exactly once in the sender's and the
//     recipient's history, and applied exactly once in the log, under its
//     acknowledged id;
//   - a send refused with a definite error is present nowhere;
//   - a send of unknown outcome is present at most once, in both histories
//     or neither, as in the log;
//   - nothing is present that was not sent, and no request or message id is
//     applied twice.
func analyzeChaos(senders []*chaosSender, histories map[string][]wire.Message, evs []replayEvent) chaosReport {
	var r chaosReport
	for _, ev := range evs {
		if ev.Type != "chat.send" || ev.Resubmitted == nil {
			continue
		}
		switch ev.Result {
		case "ok":
			r.ResubmittedApplied++
		case "duplicate":
			r.ResubmittedDuplicate++
		default:
			r.ResubmittedRejected++
		}
	}
	byBody := make(map[string]sendRec)
	var all []sendRec
	for _, s := range senders {
		for _, rec := range s.snapshot() {
			byBody[rec.body] = rec
			all = append(all, rec)
		}
	}

	// Each history: count every body, with its ids.
	type seen struct {
		n   int
		ids []uint64
	}
	inHist := make(map[string]map[string]*seen, len(histories)) // user -> body -> seen
	for user, hist := range histories {
		m := make(map[string]*seen)
		inHist[user] = m
		ids := make(map[uint64]string)
		for _, msg := range hist {
			rec, ok := byBody[msg.Body]
			if !ok || rec.from != msg.From || rec.to != msg.To || (user != msg.From && user != msg.To) {
				r.Phantoms++
				r.example("phantom", "%s's history holds %+v", user, msg)
				continue
			}
			if b, dup := ids[msg.ID]; dup && b != msg.Body {
				r.Duplicated++
				r.example("duplicated", "%s's history holds id %d for %q and %q", user, msg.ID, b, msg.Body)
			}
			ids[msg.ID] = msg.Body
			e := m[msg.Body]
			if e == nil {
				e = &seen{}
				m[msg.Body] = e
			}
			e.n++
			e.ids = append(e.ids, msg.ID)
		}
	}
	count := func(user, body string) (int, []uint64) {
		if e := inHist[user][body]; e != nil {
			return e.n, e.ids
		}
		return 0, nil
	}

	// The log: applied sends by body; requests and ids applied once.
	type applied struct {
		n   int
		ids []uint64
	}
	inLog := make(map[string]*applied)
	type request struct {
		client string
		seq    uint64
	}
	requests := make(map[request]uint64)
	logIDs := make(map[uint64]uint64)
	// Every record of a body, whatever its result, for the examples.
	records := make(map[string][]string)
	for _, ev := range evs {
		if ev.Type != "chat.send" {
			continue
		}
		if len(records[ev.Body]) < 4 {
			records[ev.Body] = append(records[ev.Body], fmt.Sprintf("offset %d epoch %d client %s seq %d id %d result %s", ev.Offset, ev.Epoch, ev.Client, ev.Seq, ev.ID, ev.Result))
		}
		if ev.Result != "ok" {
			continue
		}
		if ev.Client != "" && ev.Seq != 0 {
			q := request{ev.Client, ev.Seq}
			if off, dup := requests[q]; dup {
				r.LogDuplicated++
				r.example("log duplicated", "request %v applied at offsets %d and %d", q, off, ev.Offset)
			}
			requests[q] = ev.Offset
		}
		if off, dup := logIDs[ev.ID]; dup {
			r.LogDuplicated++
			r.example("log duplicated", "message id %d applied at offsets %d and %d", ev.ID, off, ev.Offset)
		}
		logIDs[ev.ID] = ev.Offset
		rec, ok := byBody[ev.Body]
		if !ok || rec.from != ev.From || rec.to != ev.To {
			r.LogPhantoms++
			r.example("log phantom", "offset %d: %s -> %s %q", ev.Offset, ev.From, ev.To, ev.Body)
			continue
		}
		a := inLog[ev.Body]
		if a == nil {
			a = &applied{}
			inLog[ev.Body] = a
		}
		a.n++
		a.ids = append(a.ids, ev.ID)
	}

	// Order per (sender, recipient), in the recipient's history.
	index := make(map[string]int)
	for _, s := range senders {
		for i, rec := range s.snapshot() {
			index[rec.body] = i
		}
	}
	for user, hist := range histories {
		last := make(map[string]int)
		for _, msg := range hist {
			if msg.To != user {
				continue
			}
			i, ok := index[msg.Body]
			if !ok {
				continue
			}
			if prev, ok := last[msg.From]; ok && i < prev {
				r.OrderInversions++
				r.example("order inversion", "%s received %q after send #%d", user, msg.Body, prev)
			}
			last[msg.From] = max(last[msg.From], i)
		}
	}

	for _, rec := range all {
		nf, idsF := count(rec.from, rec.body)
		nt, idsT := count(rec.to, rec.body)
		nl := 0
		var idsL []uint64
		if a := inLog[rec.body]; a != nil {
			nl, idsL = a.n, a.ids
		}
		where := fmt.Sprintf("%s -> %s %q (%s id %d %s): %dx in %s's history %v, %dx in %s's %v, applied %dx in the log %v; its records %v",
			rec.from, rec.to, rec.body, rec.out, rec.id, rec.code, nf, rec.from, idsF, nt, rec.to, idsT, nl, idsL, records[rec.body])
		if nf > 1 || nt > 1 {
			r.Duplicated++
			r.example("duplicated", "%s", where)
		}
		if nl > 1 {
			r.LogDuplicated++
			r.example("log duplicated", "%s", where)
		}
		switch rec.out {
		case acked:
			r.Acked++
			if rec.err != "" {
				r.BadAcks++
				r.example("bad ack", "%s: %s", where, rec.err)
			}
			switch {
			case nf == 0 || nt == 0:
				r.Missing++
				r.example("missing", "%s", where)
			case idsF[0] != rec.id || idsT[0] != rec.id:
				r.WrongID++
				r.example("wrong id", "%s", where)
			}
			switch {
			case nl == 0:
				r.LogMissing++
				r.example("log missing", "%s", where)
			case idsL[0] != rec.id:
				r.LogWrongID++
				r.example("log wrong id", "%s", where)
			}
		case definite:
			r.Definite++
			if r.DefiniteCodes == nil {
				r.DefiniteCodes = make(map[wire.Code]int)
			}
			r.DefiniteCodes[rec.code]++
			if nf+nt > 0 {
				r.DefiniteApplied++
				r.example("definite applied", "%s", where)
			}
			if nl > 0 {
				r.LogDefinite++
				r.example("log definite applied", "%s", where)
			}
		default:
			if rec.out == inFlight {
				r.InFlight++
			} else {
				r.Unknown++
			}
			if nf > 0 || nt > 0 {
				r.UnknownApplied++
			}
			if (nf > 0) != (nt > 0) {
				r.Partial++
				r.example("partial", "%s", where)
			}
			if (nl > 0) != (nf > 0 || nt > 0) {
				r.LogVsHistory++
				r.example("log vs history", "%s", where)
			}
		}
	}

	return r
}

// check fails t once for each kind of violation in r, with its first
// examples.
func (r chaosReport) check(t testingT) {
	t.Helper()
	for _, c := range []struct {
		n          int
		what, kind string
	}{
		{r.Missing, "acknowledged sends missing from a history", "missing"},
		{r.WrongID, "acknowledged sends stored under another id", "wrong id"},
		{r.Duplicated, "sends present more than once in a history", "duplicated"},
		{r.DefiniteApplied, "sends refused with a definite error but present", "definite applied"},
		{r.Phantoms, "messages in a history that were not sent so", "phantom"},
		{r.Partial, "unknown-outcome sends in one history only", "partial"},
		{r.LogMissing, "acknowledged sends not applied in the log", "log missing"},
		{r.LogWrongID, "acknowledged sends applied under another id in the log", "log wrong id"},
		{r.LogDuplicated, "sends, requests or message ids applied more than once in the log", "log duplicated"},
		{r.LogDefinite, "sends refused with a definite error but applied in the log", "log definite applied"},
		{r.LogPhantoms, "applied sends in the log that were not sent so", "log phantom"},
		{r.LogVsHistory, "unknown-outcome sends applied in the log but absent from the histories, or the reverse", "log vs history"},
		{r.BadAcks, "acknowledgements naming another message", "bad ack"},
	} {
		assert.Zero(t, c.n, "%s: %d; first: %s", c.what, c.n, strings.Join(r.examples[c.kind], "; "))
	}
}
