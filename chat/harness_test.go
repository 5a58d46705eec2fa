package chat_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// cheapArgon keeps password hashing fast in tests.
var cheapArgon = chat.ArgonParams{Time: 1, MemoryKiB: 8, Threads: 1}

// harness plays the primary: it decides commands on st, appends the events
// to an in-memory log (recs) and applies them, as the server will.
type harness struct {
	t      testing.TB
	store  chat.Store
	st     *chat.State
	env    chat.Env
	recs   []eventlog.Record
	now    int64
	nextID uint64
	// origins maps the users register created to their account origins.
	origins map[uint64]uint64
	// prefix starts the client ids of register and send (another
	// replica's clients, on the other side of a fork).
	prefix string
}

func newHarness(t testing.TB, store chat.Store) *harness {
	h := &harness{t: t, store: store, st: chat.NewState(store), now: 1_700_000_000e9, origins: map[uint64]uint64{}}
	h.env = chat.Env{
		NewMessageID: func() uint64 { h.nextID++; return h.nextID },
		Rand:         rand.NewChaCha8([32]byte{1}),
		Argon:        cheapArgon,
	}
	return h
}

// decide turns cmd into records (not yet applied) at the end of the log.
func (h *harness) decide(client string, seq uint64, cmd chat.Command) ([]eventlog.Record, error) {
	h.now += 1e9
	h.env.Now = h.now
	evs, err := chat.Decide(h.st, h.env, cmd)
	if err != nil {
		return nil, err
	}
	var out []eventlog.Record
	for _, ev := range evs {
		out = append(out, h.record(client, seq, ev))
	}
	return out, nil
}

// record appends ev to the log as a record of request (client, seq).
func (h *harness) record(client string, seq uint64, ev chat.Event) eventlog.Record {
	typ, data, err := chat.EncodeEvent(ev)
	require.NoError(h.t, err)
	rec := eventlog.Record{Offset: eventlog.Offset(len(h.recs) + 1), Epoch: 1, Type: typ,
		ClientID: client, Seq: seq, Time: h.now, Data: data}
	h.recs = append(h.recs, rec)
	return rec
}

// exec decides, applies and returns the stored result of the request.
func (h *harness) exec(client string, seq uint64, cmd chat.Command) (chat.Result, error) {
	recs, err := h.decide(client, seq, cmd)
	if err != nil {
		return chat.Result{}, err
	}
	require.NoError(h.t, h.st.Apply(recs))
	res, ok, err := h.st.Result(client, seq)
	require.NoError(h.t, err)
	require.True(h.t, ok, "no result for %s/%d", client, seq)
	return res, res.Err()
}

// register creates name (password "pw-"+name) and returns its id.
func (h *harness) register(name string) uint64 {
	h.t.Helper()
	seq, client := uint64(len(h.recs)+1), h.prefix+"reg-"+name
	res, err := h.exec(client, seq, chat.Register{Name: name, Password: "pw-" + name})
	require.NoError(h.t, err)
	h.origins[res.UserID] = chat.AccountOrigin(client, seq)
	return res.UserID
}

// send sends body and returns the message id.
func (h *harness) send(from uint64, to, body string) uint64 {
	h.t.Helper()
	res, err := h.exec(h.prefix+"c", uint64(len(h.recs)+1), chat.Send{FromUID: from, To: to, Body: body})
	require.NoError(h.t, err)
	return res.MessageID
}

func digest(t testing.TB, st *chat.State) []byte {
	d, err := st.Digest()
	require.NoError(t, err)
	return d
}

// snapErr drops the offset WriteSnapshot returns.
func snapErr(_ eventlog.Offset, err error) error { return err }
