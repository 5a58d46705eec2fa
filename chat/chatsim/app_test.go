package chatsim

// The chat application of the simulation (replicatest.App): what each
// simulated client asks, decided against the proposing node's chat state as
// chat/server decides it, and the AppState that wraps a chat.State.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/replicatest"
)

// simArgon are the cheapest argon2id costs chat accepts: every register
// hashes a password on the node that decides it, and a run registers
// hundreds of accounts.
var simArgon = chat.ArgonParams{Time: 1, MemoryKiB: 8, Threads: 1}

const password = "secret"

// intent is what a client means to do with a request. It is fixed when
// the client makes the request, as a real client's request is; the state
// of each node that takes it turns it into a command (resolving names to
// user ids, choosing the messages to read).
type intent uint8

const (
	intentRegister intent = iota
	intentSend
	intentRead
	intentDeleteMessages
	intentDeleteAccount
)

var intentNames = [...]string{"register", "send", "read", "delete-messages", "delete-account"}

func (i intent) String() string { return intentNames[i] }

// hashIntent is the intent request (client, seq)'s hash picks, for a client
// with an account: per thousand, 5 delete the account (a later request
// registers it again), 95 read, 50 delete received messages, the rest send.
func hashIntent(client string, seq uint64) intent {
	switch h := mix(client, seq) % 1000; {
	case h < 5:
		return intentDeleteAccount
	case h < 100:
		return intentRead
	case h < 150:
		return intentDeleteMessages
	}
	return intentSend
}

// mix is a hash of a request, the source of its client's choices.
func mix(client string, seq uint64) uint64 {
	return chat.MessageID(client, seq) ^ chat.MessageID("chatsim/"+client, seq)
}

// chatApp is the simulation's replicatest.App. Client i of the cluster
// ("c<i>") is the chat user named "c<i>".
type chatApp struct {
	clients int
	cluster *replicatest.Cluster
	// script forces the intent of some requests (scenarios), for a
	// client that has an account, and scriptTo the recipient of a send.
	script   map[replicatest.ClientSeq]intent
	scriptTo map[replicatest.ClientSeq]string
	// sendOnly makes every request of a client with an account a send.
	sendOnly bool
	// intents holds the intent of every request made, and records the
	// last record decided for it.
	intents map[replicatest.ClientSeq]intent
	records map[replicatest.ClientSeq]record
	// decided counts the commands decided, by record type.
	decided map[string]int
}

func newChatApp(clients int) *chatApp {
	return &chatApp{clients: clients, script: map[replicatest.ClientSeq]intent{}, scriptTo: map[replicatest.ClientSeq]string{},
		intents: map[replicatest.ClientSeq]intent{}, records: map[replicatest.ClientSeq]record{}, decided: map[string]int{}}
}

type record struct {
	typ  string
	data []byte
}

// attach gives the app the cluster whose clients it plays: their clock
// (Env.Now, the Time the cluster stamps on the records it proposes) and
// what they see of the chat state.
func (a *chatApp) attach(c *replicatest.Cluster) { a.cluster = c }

// NewState implements replicatest.App.
func (a *chatApp) NewState() replicatest.AppState { return newChatState() }

// Request implements replicatest.App: the command of the request, decided
// by chat.Decide against st as chat/server decides it (its Env: the message
// id MessageID(client, seq), Now the record's time). An error, from the
// command's choice or from Decide, is a definite refusal.
func (a *chatApp) Request(st replicatest.AppState, client string, seq uint64) (string, []byte, error) {
	s := st.(*chatState)
	k := replicatest.ClientSeq{Client: client, Seq: seq}
	if _, done := s.last[k]; done {
		// A retry of a request this node applied: chat/server answers it
		// from the dedup table (State.Result) without deciding it again.
		// The simulated client is answered when a record of it applies,
		// so it proposes the record again, which applies as a duplicate.
		r := a.records[k]
		return r.typ, r.data, nil
	}
	if !a.primary(s) {
		// chat/server answers not_primary; the client tries elsewhere.
		return "", nil, errNotPrimary
	}
	in, err := a.intent(s, client, seq)
	if err != nil {
		return "", nil, err
	}
	typ, data, err := a.decide(s, in, client, seq)
	if err != nil {
		a.cluster.Tracef("REFUSE %s/%d (%s): %v", client, seq, in, err)
		if chat.Code(err) != chat.CodeInternal {
			// A domain error is the answer: the client takes it.
			err = fmt.Errorf("%w: %w", replicatest.ErrFinal, err)
		}
		return "", nil, err
	}
	a.records[k] = record{typ, data}
	return typ, data, nil
}

func (a *chatApp) decide(s *chatState, in intent, client string, seq uint64) (string, []byte, error) {
	cmd, err := a.command(s.st, in, client, seq)
	if err != nil {
		return "", nil, err
	}
	env := chat.Env{
		Now:          a.cluster.Now,
		NewMessageID: func() uint64 { return chat.MessageID(client, seq) },
		Rand:         saltSource(client, seq),
		Argon:        simArgon,
	}
	evs, err := chat.Decide(s.st, env, cmd)
	if err != nil {
		return "", nil, err
	}
	if len(evs) != 1 {
		return "", nil, fmt.Errorf("chatsim: %T decided into %d events", cmd, len(evs))
	}
	a.decided[evs[0].Type()]++
	return chat.EncodeEvent(evs[0])
}

// errNotPrimary is the refusal of a node that is not primary.
var errNotPrimary = errors.New("chatsim: not primary")

// primary reports whether the node whose state is st is a primary.
func (a *chatApp) primary(st *chatState) bool {
	for _, n := range a.cluster.Nodes {
		if n.SM == replicatest.AppState(st) {
			return a.cluster.Status(n.ID).Role == replica.RolePrimary
		}
	}
	return false
}

// intent returns request (client, seq)'s intent, chosen when a primary first
// decides it (the client logs in to it and makes the request) from what
// the client sees there: a client whose login fails registers; one with
// nothing to read or delete sends instead. Retries, on that primary or
// another, keep it.
func (a *chatApp) intent(st *chatState, client string, seq uint64) (intent, error) {
	k := replicatest.ClientSeq{Client: client, Seq: seq}
	if in, ok := a.intents[k]; ok {
		return in, nil
	}
	me, ok, err := st.st.User(client)
	if err != nil {
		return 0, err
	}
	in := intentRegister
	if ok {
		var scripted bool
		if in, scripted = a.script[k]; !scripted {
			in = hashIntent(client, seq)
			if a.sendOnly {
				in = intentSend
			}
		}
		if in == intentRead || in == intentDeleteMessages {
			ids, err := toDeliverOrDelete(st.st, me.ID, in)
			if err != nil {
				return 0, err
			}
			if len(ids) == 0 {
				in = intentSend
			}
		}
	}
	a.intents[k] = in
	return in, nil
}

// command turns request (client, seq)'s intent into a command against st,
// the state of the node deciding it, as that node's chat server would: the
// client logs in by name (a client without an account there is refused),
// sends to the user its request names (or the next one with an account
// there: at worst itself), reads its unread messages (or, if none, some it
// read before: delivering again is a no-op), deletes some it received from
// others, or deletes its account.
func (a *chatApp) command(st *chat.State, in intent, client string, seq uint64) (chat.Command, error) {
	if in == intentRegister {
		return chat.Register{Name: client, Password: password}, nil
	}
	me, ok, err := st.User(client)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s cannot log in to %s", chat.ErrUnknownUser, client, in)
	}
	switch in {
	case intentDeleteAccount:
		return chat.DeleteAccount{UID: me.ID}, nil
	case intentRead, intentDeleteMessages:
		ids, err := toDeliverOrDelete(st, me.ID, in)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: nothing for %s to %s here", chat.ErrNotFound, client, in)
		}
		if in == intentRead {
			return chat.Deliver{UID: me.ID, MessageIDs: ids}, nil
		}
		return chat.DeleteMessages{UID: me.ID, IDs: ids}, nil
	}
	to := a.recipient(st, client, seq)
	return chat.Send{FromUID: me.ID, To: to, Body: body(client, seq, to)}, nil
}

// toDeliverOrDelete returns the messages a read delivers (up to 8 unread,
// else up to 2 received and read already) or a delete deletes (up to 3
// received from others, unread first) for user uid. Only the recipient's
// view of a message from another user is ever deleted: the sender's stays,
// so Result finds every message whose sender kept its account (deleting a
// message sent to oneself removes both views).
func toDeliverOrDelete(st *chat.State, uid uint64, in intent) ([]uint64, error) {
	limit := 8
	if in == intentDeleteMessages {
		limit = 3
	}
	keep := func(m chat.Message) bool {
		return m.ToUID == uid && m.RecipientView && (in == intentRead || m.FromUID != uid)
	}
	var ids []uint64
	unread, err := st.Unread(uid, 8)
	if err != nil {
		return nil, err
	}
	for _, m := range unread {
		if keep(m) && len(ids) < limit {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) > 0 {
		return ids, nil
	}
	recent, _, err := st.HistoryLast(uid, "", 0, 16)
	if err != nil {
		return nil, err
	}
	for _, m := range recent {
		if keep(m) && len(ids) < min(limit, 2) {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// recipient is the user request (client, seq) sends to: the one its script
// or its hash names, or the next that has an account on this node (at
// worst client itself, which has one).
func (a *chatApp) recipient(st *chat.State, client string, seq uint64) string {
	first := int((mix(client, seq) >> 20) % uint64(a.clients))
	if to, ok := a.scriptTo[replicatest.ClientSeq{Client: client, Seq: seq}]; ok {
		fmt.Sscanf(to, "c%d", &first)
	}
	for i := range a.clients {
		name := fmt.Sprintf("c%d", (first+i)%a.clients)
		if _, ok, err := st.User(name); err == nil && ok {
			return name
		}
	}
	return client
}

// body is the text of request (client, seq)'s message to `to`: it names
// both, so that a stored message shows whether it is under the right
// sender and recipient.
func body(client string, seq uint64, to string) string {
	return fmt.Sprintf("%s#%d>%s", client, seq, to)
}

// saltSource is the password salt source of request (client, seq):
// deterministic, so that a seed replays byte for byte.
func saltSource(client string, seq uint64) *rand.ChaCha8 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return rand.NewChaCha8(sha256.Sum256(append([]byte(client+"/salt/"), b[:]...)))
}

// chatState is a node's replicatest.AppState (with the Rollbacker and
// Reevaluator capabilities): a chat.State on a MemStore, and the
// journal of what applying each client record did on this node, from
// ApplyWithResults.
//
// The journal is what makes Result independent of the dedup window, which
// keeps a client's last DedupWindow results only (and none for a request
// applied in a hole below it): it remembers, for every request applied on
// this node, the result its client was given (the message id stored, the
// account created). Result then checks that result against the chat state
// itself: the message under that id, with that sender and recipient; the
// account. It is derived from the applied records only, and rolled back
// with the state, so it is the same on replicas that applied the same log.
type chatState struct {
	st *chat.State
	// journal lists the client records applied or rejected (and live
	// requests skipped as expired), in offset order.
	journal []entry
	// last indexes a request's newest entry in journal.
	last map[replicatest.ClientSeq]int
	// deletes lists, per client, the offsets at which it deleted an
	// account, in order.
	deletes map[string][]eventlog.Offset
}

// entry is what applying one client record did.
type entry struct {
	off eventlog.Offset
	req replicatest.ClientSeq
	typ string
	res chat.Result
	// outcome is OutcomeApplied, OutcomeRejected or OutcomeExpired.
	outcome     chat.Outcome
	resubmitted bool
	// prev is the index of the request's previous entry, -1 if none (a
	// request is applied once per log, except by a re-submission below
	// its client's HoleFloor).
	prev int
}

var (
	_ replicatest.AppState    = (*chatState)(nil)
	_ replicatest.Rollbacker  = (*chatState)(nil)
	_ replicatest.Reevaluator = (*chatState)(nil)
	_ replicatest.Snapshotter = (*chatState)(nil)
)

func newChatState() *chatState {
	return &chatState{st: chat.NewState(chat.NewMemStore()), last: map[replicatest.ClientSeq]int{},
		deletes: map[string][]eventlog.Offset{}}
}

// Apply implements replicatest.AppState: fresh is true for a client record
// applied with success or rejected (a domain error stored as its result),
// false for a duplicate, a live request skipped as expired, or a protocol
// record.
func (s *chatState) Apply(r eventlog.Record) (fresh bool, err error) {
	results, err := s.st.ApplyWithResults([]eventlog.Record{r})
	if err != nil {
		return false, err
	}
	for _, ar := range results {
		k := replicatest.ClientSeq{Client: ar.ClientID, Seq: ar.Seq}
		switch ar.Outcome {
		case chat.OutcomeApplied, chat.OutcomeRejected:
			fresh = true
		case chat.OutcomeExpired:
			if _, ok := s.last[k]; ok {
				continue
			}
			// Answered ErrExpiredRequest; never applied.
			ar.Result = chat.Result{Code: "expired_request"}
		default:
			continue
		}
		prev, ok := s.last[k]
		if !ok {
			prev = -1
		}
		s.last[k] = len(s.journal)
		s.journal = append(s.journal, entry{off: ar.Offset, req: k, typ: r.Type, res: ar.Result, outcome: ar.Outcome,
			resubmitted: ar.Resubmitted, prev: prev})
		if r.Type == chat.TypeDeleteAccount && ar.Outcome == chat.OutcomeApplied {
			s.deletes[k.Client] = append(s.deletes[k.Client], ar.Offset)
		}
	}
	return fresh, nil
}

// Applied implements replicatest.AppState.
func (s *chatState) Applied() eventlog.Offset { return s.st.Applied() }

// simSnapshot is a chatState's snapshot: the chat state's own snapshot
// bytes (chat.State.WriteSnapshot, what a replica streams and installs),
// and the journal, the simulation's bookkeeping derived from the same
// applied records.
type simSnapshot struct {
	State   []byte                       `msgpack:"state"`
	Journal []snapEntry                  `msgpack:"journal"`
	Deletes map[string][]eventlog.Offset `msgpack:"deletes"`
}

type snapEntry struct {
	Off         eventlog.Offset `msgpack:"off"`
	Client      string          `msgpack:"client"`
	Seq         uint64          `msgpack:"seq"`
	Type        string          `msgpack:"type"`
	Res         chat.Result     `msgpack:"res"`
	Outcome     chat.Outcome    `msgpack:"outcome"`
	Resubmitted bool            `msgpack:"resub"`
	Prev        int             `msgpack:"prev"`
}

// WriteSnapshot implements replicatest.Snapshotter.
func (s *chatState) WriteSnapshot(w io.Writer) (eventlog.Offset, error) {
	var buf bytes.Buffer
	off, err := s.st.WriteSnapshot(&buf)
	if err != nil {
		return 0, err
	}
	snap := simSnapshot{State: buf.Bytes(), Deletes: s.deletes}
	for _, e := range s.journal {
		snap.Journal = append(snap.Journal, snapEntry{Off: e.off, Client: e.req.Client, Seq: e.req.Seq, Type: e.typ, Res: e.res,
			Outcome: e.outcome, Resubmitted: e.resubmitted, Prev: e.prev})
	}
	return off, msgpack.NewEncoder(w).Encode(&snap)
}

// RestoreSnapshot implements replicatest.Snapshotter.
func (s *chatState) RestoreSnapshot(r io.Reader) (eventlog.Offset, error) {
	var snap simSnapshot
	if err := msgpack.NewDecoder(r).Decode(&snap); err != nil {
		return 0, err
	}
	if err := s.st.RestoreSnapshot(bytes.NewReader(snap.State)); err != nil {
		return 0, err
	}
	s.journal, s.last, s.deletes = nil, map[replicatest.ClientSeq]int{}, map[string][]eventlog.Offset{}
	for k, v := range snap.Deletes {
		s.deletes[k] = v
	}
	for i, e := range snap.Journal {
		req := replicatest.ClientSeq{Client: e.Client, Seq: e.Seq}
		s.journal = append(s.journal, entry{off: e.Off, req: req, typ: e.Type, res: e.Res, outcome: e.Outcome,
			resubmitted: e.Resubmitted, prev: e.Prev})
		s.last[req] = i
	}
	return s.st.Applied(), nil
}

// Digest implements replicatest.AppState: the first 8 bytes of the chat
// state's digest.
func (s *chatState) Digest() uint64 {
	d, err := s.st.Digest()
	if err != nil {
		panic(fmt.Sprintf("chatsim: digest of a MemStore state: %v", err))
	}
	return binary.BigEndian.Uint64(d)
}

// RollbackTo implements replicatest.Rollbacker: the chat state's undo
// history, and the journal with it.
func (s *chatState) RollbackTo(after eventlog.Offset) (eventlog.Offset, error) {
	off, err := s.st.RollbackTo(after)
	if err != nil {
		return off, err
	}
	for n := len(s.journal); n > 0 && s.journal[n-1].off > off; n-- {
		e := s.journal[n-1]
		if e.prev >= 0 {
			s.last[e.req] = e.prev
		} else {
			delete(s.last, e.req)
		}
		if e.typ == chat.TypeDeleteAccount && e.outcome == chat.OutcomeApplied {
			d := s.deletes[e.req.Client]
			s.deletes[e.req.Client] = d[:len(d)-1]
		}
		s.journal = s.journal[:n-1]
	}
	return off, nil
}

// SetStable implements replicatest.Rollbacker.
func (s *chatState) SetStable(off eventlog.Offset) { s.st.SetStable(off) }

// Result implements replicatest.AppState: what request (client, seq)'s
// client was told, as this state holds it now. For a send, "sent <id>" if
// the message stored under the id it was given has the request's body,
// sender and recipient; for a register, "registered" if the account it
// created exists. Either may be gone legitimately once the client deleted
// that account (its views, and the messages with no view left, are purged);
// anything else that differs says what it found instead. A rejection is
// "rejected <code>".
func (s *chatState) Result(client string, seq uint64) (string, bool) {
	i, ok := s.last[replicatest.ClientSeq{Client: client, Seq: seq}]
	if !ok {
		return "", false
	}
	e := s.journal[i]
	if e.outcome != chat.OutcomeApplied {
		return "rejected " + e.res.Code, true
	}
	r, err := s.check(e)
	if err != nil {
		return err.Error(), true
	}
	return r, true
}

func (s *chatState) check(e entry) (string, error) {
	client := e.req.Client
	switch e.typ {
	case chat.TypeRegister:
		u, ok, err := s.st.UserByID(e.res.UserID)
		switch {
		case err != nil:
			return "", err
		case ok && u.Name == client:
		case ok:
			return "", fmt.Errorf("registered user %d, which is now %q", e.res.UserID, u.Name)
		case !s.deletedAfter(client, e.off):
			return "", fmt.Errorf("registered user %d, which is gone though %s never deleted it", e.res.UserID, client)
		}
		return "registered", nil
	case chat.TypeSend:
		id := e.res.MessageID
		m, ok, err := s.st.Message(id)
		prefix := fmt.Sprintf("%s#%d>", client, e.req.Seq)
		switch {
		case err != nil:
			return "", err
		case ok && strings.HasPrefix(m.Body, prefix) && m.From == client && m.To == m.Body[len(prefix):]:
		case ok:
			return "", fmt.Errorf("sent %d, which holds %q from %q to %q", id, m.Body, m.From, m.To)
		case !s.deletedAfter(client, e.off):
			return "", fmt.Errorf("sent %d, which is gone though %s kept its account", id, client)
		}
		return fmt.Sprintf("sent %d", id), nil
	case chat.TypeDeliver:
		return "delivered", nil
	case chat.TypeDeleteMessages:
		return "deleted messages", nil
	case chat.TypeDeleteAccount:
		return "deleted account", nil
	}
	return "", errors.New("unknown record type " + e.typ)
}

// deletedAfter reports whether client deleted an account after offset off.
func (s *chatState) deletedAfter(client string, off eventlog.Offset) bool {
	d := s.deletes[client]
	return len(d) > 0 && d[len(d)-1] > off
}

// Reevaluated implements replicatest.Reevaluator: the request's last
// application here is a re-submission, which either was rejected for a
// domain reason (chat/server's StateMachine logs a warning for each and
// counts them) or was applied although its client had been told it was
// rejected (on the side that lost).
func (s *chatState) Reevaluated(client string, seq uint64, told string) (string, bool) {
	i, ok := s.last[replicatest.ClientSeq{Client: client, Seq: seq}]
	if !ok {
		return "", false
	}
	e := s.journal[i]
	switch {
	case !e.resubmitted:
		return "", false
	case e.outcome == chat.OutcomeRejected:
		return fmt.Sprintf("re-submitted %s rejected at offset %d: %s", e.typ, e.off, e.res.Message), true
	case e.outcome == chat.OutcomeApplied && strings.HasPrefix(told, "rejected "):
		return fmt.Sprintf("re-submitted %s applied at offset %d, rejected on the side that lost", e.typ, e.off), true
	}
	return "", false
}
