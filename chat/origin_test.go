package chat_test

// Goal: every event's user reference means the same account on every side
// of a forked log. Both sides register different accounts during the fork,
// so a user id names different accounts on each; the losing side's records
// re-submitted to the winning side must still act on the accounts they were
// decided for (by origin: AccountOrigin of the register request), be
// rejected when that account does not exist there, and old events (without
// origins) keep meaning their user id.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// fork returns the two sides of a log forked after its first records:
// both applied prefix, then each goes on alone.
func fork(t *testing.T, prefix func(h *harness)) (lose, win *harness) {
	lose = newHarness(t, chat.NewMemStore())
	prefix(lose)
	win = newHarness(t, chat.NewMemStore())
	win.prefix = "w-" // the other side's clients
	win.now, win.nextID = lose.now, lose.nextID+1000
	win.recs = append(win.recs, lose.recs...)
	require.NoError(t, win.st.Apply(win.recs))
	for uid, o := range lose.origins {
		win.origins[uid] = o
	}
	return lose, win
}

// resubmitAll re-submits the losing side's records after offset after to
// the winning side, in order, as a replica that truncated them does, and
// returns what applying them did.
func resubmitAll(t *testing.T, lose, win *harness, after int) []chat.AppliedResult {
	var recs []eventlog.Record
	for _, r := range lose.recs[after:] {
		r.OrigEpoch, r.OrigOffset = 1, r.Offset
		r.Offset, r.Epoch = eventlog.Offset(len(win.recs)+1), 2
		win.recs = append(win.recs, r)
		recs = append(recs, r)
	}
	results, err := win.st.ApplyWithResults(recs)
	require.NoError(t, err)
	require.NoError(t, win.st.Check())
	return results
}

func message(t *testing.T, st *chat.State, id uint64) chat.Message {
	t.Helper()
	m, ok, err := st.Message(id)
	require.NoError(t, err)
	require.True(t, ok, "message %d", id)
	return m
}

func user(t *testing.T, st *chat.State, name string) (chat.UserInfo, bool) {
	t.Helper()
	u, ok, err := st.User(name)
	require.NoError(t, err)
	return u, ok
}

func TestOrigin_ResubmittedRecordsNameTheirAccounts(t *testing.T) {
	var ann uint64
	lose, win := fork(t, func(h *harness) { ann = h.register("ann") })
	fromLee, toLee := uint64(0), uint64(0)
	lee := lose.register("lee") // user 2 on the losing side
	fromLee = lose.send(lee, "ann", "from lee")
	toLee = lose.send(ann, "lee", "to lee")
	_, err := lose.exec("lee-client", 50, chat.Deliver{UID: lee, MessageIDs: []uint64{toLee}})
	require.NoError(t, err)
	wes := win.register("wes") // user 2 on the winning side
	win.register("wyn")        // user 3
	toWes := win.send(ann, "wes", "to wes")
	require.Equal(t, lee, wes, "the fork gave both accounts the same id")

	// lee deletes its account on the losing side.
	_, err = lose.exec("lee-client", 51, chat.DeleteAccount{UID: lee})
	require.NoError(t, err)

	for _, r := range resubmitAll(t, lose, win, 1) {
		assert.Equal(t, chat.OutcomeApplied, r.Outcome, "%s/%d: %+v", r.ClientID, r.Seq, r.Result)
	}
	st := win.st
	m := message(t, st, fromLee)
	assert.Equal(t, "lee", m.From, "a send from lee shows lee, not wes")
	assert.NotEqual(t, wes, m.FromUID)
	m = message(t, st, toLee)
	assert.Equal(t, "lee", m.To, "a send to lee went to lee, not wes")
	assert.True(t, m.Delivered, "lee's read delivered lee's message")
	assert.False(t, message(t, st, toWes).Delivered, "and not wes's")
	_, ok := user(t, st, "lee")
	assert.False(t, ok, "lee deleted its own account")
	w, ok := user(t, st, "wes")
	assert.True(t, ok, "lee's deletion did not delete wes")
	assert.Equal(t, wes, w.ID)
	unread, err := st.Unread(wes, 10)
	require.NoError(t, err)
	require.Len(t, unread, 1)
	assert.Equal(t, toWes, unread[0].ID, "wes's queue holds only its own message")
}

func TestOrigin_AccountMissingOnTheWinningSideIsARejection(t *testing.T) {
	var ann uint64
	lose, win := fork(t, func(h *harness) { ann = h.register("ann") })
	lee := lose.register("lee")
	fromLee := lose.send(lee, "ann", "from lee")
	toLee := lose.send(ann, "lee", "to lee")
	// The winning side registered another account named lee (a client
	// that did not know of the first): the re-submitted register is
	// rejected, and so is everything that names the losing side's lee,
	// rather than landing on the other account of that name.
	other := win.register("lee")
	results := resubmitAll(t, lose, win, 1)
	require.Len(t, results, 3)
	for _, r := range results {
		assert.Equal(t, chat.OutcomeRejected, r.Outcome, "%s/%d: %+v", r.ClientID, r.Seq, r.Result)
		assert.True(t, r.Resubmitted)
	}
	assert.Equal(t, "user_exists", results[0].Result.Code)
	assert.Equal(t, "unknown_user", results[1].Result.Code)
	assert.Equal(t, "unknown_user", results[2].Result.Code)
	for _, id := range []uint64{fromLee, toLee} {
		_, ok, err := win.st.Message(id)
		require.NoError(t, err)
		assert.False(t, ok, "message %d of the lost account", id)
	}
	u, ok := user(t, win.st, "lee")
	require.True(t, ok)
	assert.Equal(t, other, u.ID)
	assert.Zero(t, u.History, "the other lee sees none of the lost account's messages")
}

func TestOrigin_DeletedAccountIsNotResolvedToItsSuccessor(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann, bob := h.register("ann"), h.register("bob")
	// Decided while bob lived, applied after bob was deleted and a new
	// bob registered: rejected, not delivered to the new bob.
	late, err := h.decide("c", 100, chat.Send{FromUID: ann, To: "bob", Body: "late"})
	require.NoError(t, err)
	h.recs = h.recs[:len(h.recs)-1]
	_, err = h.exec("bob-client", 1, chat.DeleteAccount{UID: bob})
	require.NoError(t, err)
	newBob := h.register("bob")
	rec := late[0]
	rec.Offset = eventlog.Offset(len(h.recs) + 1)
	h.recs = append(h.recs, rec)
	results, err := h.st.ApplyWithResults([]eventlog.Record{rec})
	require.NoError(t, err)
	require.Len(t, results, 1)
	assert.Equal(t, "unknown_user", results[0].Result.Code)
	u, _, err := h.st.UserByID(newBob)
	require.NoError(t, err)
	assert.Zero(t, u.History)
}

func TestOrigin_OldEventsMeanTheirUserID(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	// A log written before origins: registers without the origin flag,
	// events without origins.
	h.record("c", 1, &chat.RegisterEvent{Name: "ann", PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"})
	h.record("c", 2, &chat.RegisterEvent{Name: "bob", PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"})
	h.record("c", 3, &chat.SendEvent{MessageID: 77, FromUID: 1, ToUID: 2, Body: "old"})
	h.record("c", 4, &chat.DeliverEvent{UID: 2, MessageIDs: []uint64{77}})
	require.NoError(t, h.st.Apply(h.recs))
	require.NoError(t, h.st.Check())
	m := message(t, h.st, 77)
	assert.Equal(t, "ann", m.From)
	assert.Equal(t, "bob", m.To)
	assert.True(t, m.Delivered)
	// New events about those accounts carry no origin either.
	evs, err := chat.Decide(h.st, h.env, chat.Send{FromUID: 1, To: "bob", Body: "new"})
	require.NoError(t, err)
	send := evs[0].(*chat.SendEvent)
	assert.Zero(t, send.FromOrigin)
	assert.Zero(t, send.ToOrigin)

	// The old events' bytes are what they were: no origin keys.
	for _, ev := range []chat.Event{&chat.RegisterEvent{Name: "ann", PasswordHash: "h"},
		&chat.SendEvent{MessageID: 1, FromUID: 1, ToUID: 2, Body: "b"}, &chat.DeliverEvent{UID: 1, MessageIDs: []uint64{1}},
		&chat.DeleteMessagesEvent{UID: 1, IDs: []uint64{1}}, &chat.DeleteAccountEvent{UID: 1}} {
		_, data, err := chat.EncodeEvent(ev)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, msgpack.Unmarshal(data, &m))
		for k := range m {
			assert.NotContains(t, []string{"o", "from_o", "to_o"}, k, "%T", ev)
		}
	}
}

func TestAccountOrigin(t *testing.T) {
	assert.Equal(t, chat.AccountOrigin("c", 1), chat.AccountOrigin("c", 1), "a function of the request")
	assert.NotEqual(t, chat.AccountOrigin("c", 1), chat.AccountOrigin("c", 2))
	assert.NotEqual(t, chat.AccountOrigin("c", 1), chat.AccountOrigin("d", 1))
	assert.NotZero(t, chat.AccountOrigin("", 0))
}
