package chat_test

// Goal: Apply is exact (each record once, in order, resumable), total
// (requests invalid at apply time become error results, not failures) and
// deterministic; the queries show each user exactly their own messages.

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

func TestState_Apply_Offsets(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	h.register("ann")
	proto := eventlog.Record{Offset: 2, Epoch: 1, Type: "replica.isr", Data: []byte{1, 2}}
	require.NoError(t, h.st.Apply([]eventlog.Record{proto}))
	assert.Equal(t, eventlog.Offset(2), h.st.Applied(), "protocol events advance the offset")
	before := digest(t, h.st)

	// Already applied records are skipped.
	require.NoError(t, h.st.Apply([]eventlog.Record{proto}))
	assert.Equal(t, before, digest(t, h.st))

	// A gap is an error and changes nothing.
	err := h.st.Apply([]eventlog.Record{{Offset: 4, Type: "replica.isr"}})
	var gap *chat.GapError
	require.ErrorAs(t, err, &gap)
	assert.Equal(t, uint64(2), gap.Applied)
	assert.Equal(t, uint64(4), gap.Got)
	assert.ErrorIs(t, err, chat.ErrGap)

	// An undecodable chat payload is an error naming its offset; the whole
	// batch is rolled back.
	ok := eventlog.Record{Offset: 3, Type: "replica.noop"}
	bad := eventlog.Record{Offset: 4, Type: chat.TypeSend, Data: []byte{0xc1}}
	err = h.st.Apply([]eventlog.Record{ok, bad})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "offset 4")
	assert.Equal(t, eventlog.Offset(2), h.st.Applied())
	assert.Equal(t, before, digest(t, h.st))
	unknown := eventlog.Record{Offset: 3, Type: "chat.bogus"}
	require.Error(t, h.st.Apply([]eventlog.Record{unknown}))

	require.NoError(t, h.st.Apply(nil))

	// A client id too long for the dedup table: skipped, offset advanced.
	long := h.record(string(make([]byte, chat.MaxClientIDLen+1)), 1, &chat.RegisterEvent{Name: "zed", PasswordHash: "$argon2id$x"})
	long.Offset = 3
	require.NoError(t, h.st.Apply([]eventlog.Record{long}))
	assert.Equal(t, eventlog.Offset(3), h.st.Applied())
	_, ok2, err := h.st.User("zed")
	require.NoError(t, err)
	assert.False(t, ok2)
	require.NoError(t, h.st.Check())
}

func TestState_Apply_Total(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann, bob := h.register("ann"), h.register("bob")

	// Two registers of one name decided concurrently: the second loses.
	r1, err := h.decide("c1", 1, chat.Register{Name: "cy", Password: "a"})
	require.NoError(t, err)
	r2, err := h.decide("c2", 1, chat.Register{Name: "cy", Password: "b"})
	require.NoError(t, err)
	// A send decided before its sender is deleted.
	s1, err := h.decide("c3", 1, chat.Send{FromUID: bob, To: "ann", Body: "late"})
	require.NoError(t, err)
	d1, err := h.decide("c4", 1, chat.DeleteAccount{UID: bob})
	require.NoError(t, err)
	batch := append(append(append(r1, r2...), d1...), s1...)
	// Records must be applied in offset order: renumber the reordered batch.
	for i := range batch {
		batch[i].Offset = eventlog.Offset(len(h.recs) - len(batch) + i + 1)
	}
	require.NoError(t, h.st.Apply(batch))

	tests := []struct {
		client string
		code   string
	}{
		{"c1", ""}, {"c2", "user_exists"}, {"c4", ""}, {"c3", "unknown_user"},
	}
	for _, tt := range tests {
		res, ok, err := h.st.Result(tt.client, 1)
		require.NoError(t, err)
		require.True(t, ok, tt.client)
		assert.Equal(t, tt.code, res.Code, tt.client)
	}
	_, err = h.st.VerifyLogin("cy", "a")
	assert.NoError(t, err, "the first register won")

	// Events that Decide would have refused are rejected at apply too.
	events := []struct {
		ev   chat.Event
		code string
	}{
		{&chat.RegisterEvent{Name: "bad name", PasswordHash: "$argon2id$x"}, "invalid_name"},
		{&chat.RegisterEvent{Name: "dee", PasswordHash: "plaintext"}, "invalid_argument"},
		{&chat.SendEvent{MessageID: 0, FromUID: ann, ToUID: ann, Body: "x"}, "invalid_argument"},
		{&chat.SendEvent{MessageID: 500, FromUID: ann, ToUID: ann, Body: ""}, "empty_message"},
		{&chat.SendEvent{MessageID: 500, FromUID: ann, ToUID: bob, Body: "x"}, "unknown_user"},
		{&chat.DeliverEvent{UID: ann}, "invalid_argument"},
		{&chat.DeliverEvent{UID: bob, MessageIDs: []uint64{1}}, "unknown_user"},
		{&chat.DeleteMessagesEvent{UID: ann, IDs: []uint64{12345}}, "not_found"},
		{&chat.DeleteMessagesEvent{UID: bob, IDs: []uint64{1}}, "unknown_user"},
		{&chat.DeleteAccountEvent{UID: bob}, "unknown_user"},
	}
	for i, tt := range events {
		rec := h.record("bad", uint64(i+1), tt.ev)
		require.NoError(t, h.st.Apply([]eventlog.Record{rec}))
		res, ok, err := h.st.Result("bad", uint64(i+1))
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, tt.code, res.Code, "%T", tt.ev)
		assert.Equal(t, tt.code, chat.Code(res.Err()))
	}
	require.NoError(t, h.st.Check())
}

func TestState_Dedup(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	recs, err := h.decide("phone", 7, chat.Send{FromUID: ann, To: "ann", Body: "once"})
	require.NoError(t, err)
	require.NoError(t, h.st.Apply(recs))
	first, ok, err := h.st.Result("phone", 7)
	require.NoError(t, err)
	require.True(t, ok)
	require.Empty(t, first.Code)

	// The same request re-submitted (after a failover: new offset, new id).
	again, err := h.decide("phone", 7, chat.Send{FromUID: ann, To: "ann", Body: "once"})
	require.NoError(t, err)
	require.NoError(t, h.st.Apply(again))
	got, ok, err := h.st.Result("phone", 7)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, first, got, "a retry gets the original result")
	hist, _, err := h.st.History(ann, "", 0, 10)
	require.NoError(t, err)
	assert.Len(t, hist, 1, "applied once")

	_, ok, err = h.st.Result("phone", 8)
	require.NoError(t, err)
	assert.False(t, ok)
	_, ok, err = h.st.Result("tablet", 7)
	require.NoError(t, err)
	assert.False(t, ok)

	// An error result is kept too, and a retry does not turn it into a success.
	rej := h.record("phone", 9, &chat.DeleteAccountEvent{UID: 99})
	require.NoError(t, h.st.Apply([]eventlog.Record{rej}))
	retry := h.record("phone", 9, &chat.DeleteAccountEvent{UID: ann})
	require.NoError(t, h.st.Apply([]eventlog.Record{retry}))
	res, _, err := h.st.Result("phone", 9)
	require.NoError(t, err)
	assert.Equal(t, "unknown_user", res.Code)
	_, ok, err = h.st.User("ann")
	require.NoError(t, err)
	assert.True(t, ok, "the duplicate was not applied")
	require.NoError(t, h.st.Check())
}

func TestState_Dedup_Window(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	n := 400
	var recs []eventlog.Record
	for seq := 1; seq <= n; seq++ {
		recs = append(recs, h.record("bot", uint64(seq), &chat.SendEvent{MessageID: uint64(seq), FromUID: ann, ToUID: ann, Body: "x"}))
	}
	require.NoError(t, h.st.Apply(recs))
	require.NoError(t, h.st.Check())

	res, ok, err := h.st.Result("bot", 1)
	require.NoError(t, err)
	require.True(t, ok)
	assert.ErrorIs(t, res.Err(), chat.ErrExpiredRequest, "evicted seqs report expiry")
	for seq := n - chat.DedupWindow + 1; seq <= n; seq++ {
		res, ok, err = h.st.Result("bot", uint64(seq))
		require.NoError(t, err)
		require.True(t, ok, "the last DedupWindow results are kept")
		assert.Equal(t, uint64(seq), res.MessageID)
	}

	// An evicted request re-submitted is still not applied again.
	before := digest(t, h.st)
	dup := h.record("bot", 3, &chat.SendEvent{MessageID: 9999, FromUID: ann, ToUID: ann, Body: "x"})
	require.NoError(t, h.st.Apply([]eventlog.Record{dup}))
	_, found, err := h.st.Message(9999)
	require.NoError(t, err)
	assert.False(t, found)
	after := digest(t, h.st)
	assert.NotEqual(t, before, after, "only the applied offset moved")
}

func TestState_Dedup_IdleExpiry(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	_, err := h.exec("old", 1, chat.Send{FromUID: ann, To: "ann", Body: "x"})
	require.NoError(t, err)
	h.now += chat.DedupIdleNanos - 10e9
	_, err = h.exec("new", 1, chat.Send{FromUID: ann, To: "ann", Body: "x"})
	require.NoError(t, err)
	_, ok, err := h.st.Result("old", 1)
	require.NoError(t, err)
	assert.True(t, ok, "not idle long enough yet")

	h.now += 20e9
	_, err = h.exec("new", 2, chat.Send{FromUID: ann, To: "ann", Body: "x"})
	require.NoError(t, err)
	_, ok, err = h.st.Result("old", 1)
	require.NoError(t, err)
	assert.True(t, ok, "idle clients are looked for once an hour of log time")

	h.now += 3600e9
	_, err = h.exec("new", 4, chat.Send{FromUID: ann, To: "ann", Body: "x"})
	require.NoError(t, err)
	_, ok, err = h.st.Result("old", 1)
	require.NoError(t, err)
	assert.False(t, ok, "idle client expired")
	_, ok, err = h.st.Result("new", 1)
	require.NoError(t, err)
	assert.True(t, ok)

	// A record whose time went backwards (another primary's clock) does
	// not move the expiry clock back.
	h.now -= 100 * chat.DedupIdleNanos
	_, err = h.exec("new", 5, chat.Send{FromUID: ann, To: "ann", Body: "x"})
	require.NoError(t, err)
	require.NoError(t, h.st.Check())
}

func TestState_Messages(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann, bob, cy := h.register("ann"), h.register("bob"), h.register("cy")
	m1 := h.send(ann, "bob", "one")
	m2 := h.send(cy, "bob", "two")
	m3 := h.send(bob, "ann", "three")
	m4 := h.send(ann, "bob", "four")

	n, err := h.st.UnreadCount(bob)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	unread, err := h.st.Unread(bob, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint64{m1, m2}, ids(unread), "oldest first, limited")
	assert.Equal(t, "ann", unread[0].From)
	assert.Equal(t, "bob", unread[0].To)
	assert.Equal(t, "one", unread[0].Body)
	assert.NotZero(t, unread[0].Time)

	res, err := h.exec("c", 100, chat.Deliver{UID: bob, MessageIDs: []uint64{m1, m2}})
	require.NoError(t, err)
	assert.Equal(t, []uint64{m1, m2}, res.IDs)
	res, err = h.exec("c", 101, chat.Deliver{UID: bob, MessageIDs: []uint64{m1, m4}})
	require.NoError(t, err)
	assert.Equal(t, []uint64{m4}, res.IDs, "delivering twice is a no-op")
	n, err = h.st.UnreadCount(bob)
	require.NoError(t, err)
	assert.Zero(t, n)

	// History: oldest first, paged, and filtered by peer.
	page, next, err := h.st.History(bob, "", 0, 3)
	require.NoError(t, err)
	assert.Equal(t, []uint64{m1, m2, m3}, ids(page))
	require.NotZero(t, next)
	page, next, err = h.st.History(bob, "", next, 3)
	require.NoError(t, err)
	assert.Equal(t, []uint64{m4}, ids(page))
	assert.Zero(t, next)
	page, _, err = h.st.History(bob, "ann", 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{m1, m3, m4}, ids(page))
	_, _, err = h.st.History(bob, "zed", 0, 10)
	assert.ErrorIs(t, err, chat.ErrUnknownUser)
	_, _, err = h.st.History(bob, "", 0, 0)
	assert.ErrorIs(t, err, chat.ErrInvalidArgument)
	_, err = h.st.Unread(bob, chat.MaxQueryLimit+1)
	assert.ErrorIs(t, err, chat.ErrInvalidArgument)

	// Deleting removes only the caller's view; the last view drops it.
	_, err = h.exec("c", 102, chat.DeleteMessages{UID: bob, IDs: []uint64{m1, m3}})
	require.NoError(t, err)
	page, _, err = h.st.History(bob, "", 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{m2, m4}, ids(page))
	page, _, err = h.st.History(ann, "", 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{m1, m3, m4}, ids(page))
	_, err = h.exec("c", 103, chat.DeleteMessages{UID: ann, IDs: []uint64{m1}})
	require.NoError(t, err)
	_, found, err := h.st.Message(m1)
	require.NoError(t, err)
	assert.False(t, found, "no view left")
	msg, found, err := h.st.Message(m3)
	require.NoError(t, err)
	require.True(t, found)
	assert.True(t, msg.RecipientView)
	assert.False(t, msg.SenderView)

	// All or nothing: one id not ours deletes none.
	_, err = h.exec("c", 104, chat.DeleteMessages{UID: ann, IDs: []uint64{m4, m2}})
	assert.ErrorIs(t, err, chat.ErrForbidden)
	_, found, err = h.st.Message(m4)
	require.NoError(t, err)
	assert.True(t, found)

	// Deleting an unread message also takes it out of the queue.
	m5 := h.send(ann, "cy", "five")
	_, err = h.exec("c", 105, chat.DeleteMessages{UID: cy, IDs: []uint64{m5}})
	require.NoError(t, err)
	n, err = h.st.UnreadCount(cy)
	require.NoError(t, err)
	assert.Zero(t, n)

	// A message to oneself has one history entry and goes with one delete.
	self := h.send(cy, "cy", "memo")
	page, _, err = h.st.History(cy, "cy", 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{self}, ids(page))
	_, err = h.exec("c", 106, chat.DeleteMessages{UID: cy, IDs: []uint64{self}})
	require.NoError(t, err)
	_, found, err = h.st.Message(self)
	require.NoError(t, err)
	assert.False(t, found)
	require.NoError(t, h.st.Check())
}

func TestState_DeleteAccount_NameReuse(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann, bob := h.register("ann"), h.register("bob")
	toBob := h.send(ann, "bob", "for the old bob")
	fromBob := h.send(bob, "ann", "from the old bob")
	_, err := h.exec("c", 100, chat.DeleteAccount{UID: bob})
	require.NoError(t, err)
	_, ok, err := h.st.User("bob")
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = h.st.VerifyLogin("bob", "pw-bob")
	assert.ErrorIs(t, err, chat.ErrUnknownUser)

	newBob := h.register("bob")
	assert.NotEqual(t, bob, newBob, "ids are never reused")
	hist, _, err := h.st.History(newBob, "", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, hist)
	n, err := h.st.UnreadCount(newBob)
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = h.exec("c", 101, chat.DeleteMessages{UID: newBob, IDs: []uint64{toBob}})
	assert.ErrorIs(t, err, chat.ErrForbidden, "the old account's messages are not the new one's")

	// What the old bob sent stays with ann, under the name it had.
	unread, err := h.st.Unread(ann, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{fromBob}, ids(unread))
	assert.Equal(t, "bob", unread[0].From)
	assert.Equal(t, bob, unread[0].FromUID)
	// Ann's sent message to the old bob keeps her view only, and is not in
	// her history with the new bob.
	withBob, _, err := h.st.History(ann, "bob", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, withBob)
	msg, found, err := h.st.Message(toBob)
	require.NoError(t, err)
	require.True(t, found)
	assert.False(t, msg.RecipientView)
	require.NoError(t, h.st.Check())
}

func TestState_Users(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	for _, name := range []string{"ann", "anna", "annie", "bob", "Ann", "zed", "an"} {
		h.register(name)
	}
	tests := []struct {
		pattern, after string
		limit          int
		want           []string
		next           string
	}{
		{"*", "", 100, []string{"Ann", "an", "ann", "anna", "annie", "bob", "zed"}, ""},
		{"ann*", "", 2, []string{"ann", "anna"}, "anna"},
		{"ann*", "anna", 2, []string{"annie"}, ""},
		{"ann?", "", 10, []string{"anna"}, ""},
		{"[ab]*", "", 10, []string{"an", "ann", "anna", "annie", "bob"}, ""},
		{"*n", "", 10, []string{"Ann", "an", "ann"}, ""},
		{"bob", "", 10, []string{"bob"}, ""},
		{"bo", "", 10, nil, ""},
		{"*", "bob", 10, []string{"zed"}, ""},
		{"*", "", 7, []string{"Ann", "an", "ann", "anna", "annie", "bob", "zed"}, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s after %q", tt.pattern, tt.after), func(t *testing.T) {
			got, next, err := h.st.Users(tt.pattern, tt.after, tt.limit)
			require.NoError(t, err)
			var names []string
			for _, u := range got {
				names = append(names, u.Name)
			}
			assert.Equal(t, tt.want, names)
			assert.Equal(t, tt.next, next)
		})
	}
	_, _, err := h.st.Users("[", "", 10)
	assert.ErrorIs(t, err, chat.ErrInvalidArgument)
	_, _, err = h.st.Users("*", "", 0)
	assert.ErrorIs(t, err, chat.ErrInvalidArgument)
}

func TestState_VerifyLogin(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	u, err := h.st.VerifyLogin("ann", "pw-ann")
	require.NoError(t, err)
	assert.Equal(t, ann, u.ID)
	_, err = h.st.VerifyLogin("ann", "pw-bob")
	assert.ErrorIs(t, err, chat.ErrWrongPassword)
	assert.Equal(t, "wrong_password", chat.Code(err))
	_, err = h.st.VerifyLogin("Ann", "pw-ann")
	assert.ErrorIs(t, err, chat.ErrUnknownUser, "names are case-sensitive")
}

// replay applies recs to a fresh MemStore in batches of size batch.
func replay(t *testing.T, recs []eventlog.Record, batch int) *chat.State {
	st := chat.NewState(chat.NewMemStore())
	for i := 0; i < len(recs); i += batch {
		require.NoError(t, st.Apply(recs[i:min(i+batch, len(recs))]))
	}
	return st
}

func TestState_Deterministic(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	runScript(t, h)
	want := digest(t, h.st)
	for _, batch := range []int{1, 3, len(h.recs)} {
		st := replay(t, h.recs, batch)
		assert.Equal(t, want, digest(t, st), "batch %d", batch)
		assert.Equal(t, h.st.Applied(), st.Applied())
	}

	// Restart: apply a prefix, reopen the store, apply everything.
	store := chat.NewMemStore()
	half := len(h.recs) / 2
	require.NoError(t, chat.NewState(store).Apply(h.recs[:half]))
	st := chat.NewState(store)
	assert.Equal(t, eventlog.Offset(half), st.Applied())
	require.NoError(t, st.Apply(h.recs))
	assert.Equal(t, want, digest(t, st))
	require.NoError(t, st.Check())
}

// runScript drives a little of everything through h.
func runScript(t *testing.T, h *harness) {
	ann, bob, cy := h.register("ann"), h.register("bob"), h.register("cy")
	var sent []uint64
	for i := range 12 {
		from, to := []uint64{ann, bob, cy}[i%3], []string{"bob", "cy", "ann", "ann"}[i%4]
		sent = append(sent, h.send(from, to, fmt.Sprintf("m%d", i)))
	}
	_, err := h.exec("c", 1000, chat.Deliver{UID: bob, MessageIDs: []uint64{sent[0]}})
	require.NoError(t, err)
	_, err = h.exec("c", 1001, chat.DeleteMessages{UID: ann, IDs: []uint64{sent[0], sent[2]}})
	require.NoError(t, err)
	_, err = h.exec("c", 1002, chat.DeleteAccount{UID: cy})
	require.NoError(t, err)
	h.register("cy")
	h.record("", 0, &chat.DeleteAccountEvent{UID: 999}) // rejected, no client
	h.recs = append(h.recs, eventlog.Record{Offset: eventlog.Offset(len(h.recs) + 1), Type: "replica.isr"})
	require.NoError(t, h.st.Apply(h.recs[len(h.recs)-2:]))
}

// txnLimitStore fails Updates with more than limit writes, like Badger.
type txnLimitStore struct {
	chat.Store
	limit   int
	refused int
}

func (s *txnLimitStore) Update(fn func(chat.KV) error) error {
	n := 0
	err := s.Store.Update(func(kv chat.KV) error { return fn(&limitKV{KV: kv, n: &n, limit: s.limit}) })
	if errors.Is(err, chat.ErrTxnTooBig) {
		s.refused++
	}
	return err
}

type limitKV struct {
	chat.KV
	n     *int
	limit int
}

func (kv *limitKV) Set(k, v []byte) error {
	if *kv.n++; *kv.n > kv.limit {
		return fmt.Errorf("set: %w", chat.ErrTxnTooBig)
	}
	return kv.KV.Set(k, v)
}

func TestState_Apply_SplitsTooBigBatches(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	runScript(t, h)
	store := &txnLimitStore{Store: chat.NewMemStore(), limit: 40}
	st := chat.NewState(store)
	require.NoError(t, st.Apply(h.recs))
	assert.Positive(t, store.refused, "the batch had to be split")
	assert.Equal(t, digest(t, h.st), digest(t, st))

	// A single record too big for one transaction is an error.
	tiny := &txnLimitStore{Store: chat.NewMemStore(), limit: 2}
	err := chat.NewState(tiny).Apply(h.recs[:1])
	assert.ErrorIs(t, err, chat.ErrTxnTooBig)
}

func TestCode(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{chat.ErrInvalidName, "invalid_name"},
		{fmt.Errorf("wrap: %w", chat.ErrUserExists), "user_exists"},
		{&chat.QueueFullError{To: "x", Limit: 1}, "queue_full"},
		{chat.ErrNotFound, "not_found"},
		{chat.ErrForbidden, "forbidden"},
		{chat.ErrMessageTooLarge, "message_too_large"},
		{chat.ErrEmptyMessage, "empty_message"},
		{chat.ErrWrongPassword, "wrong_password"},
		{chat.ErrUnknownUser, "unknown_user"},
		{chat.ErrInvalidArgument, "invalid_argument"},
		{errors.New("disk on fire"), chat.CodeInternal},
		{chat.ErrGap, chat.CodeInternal},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, chat.Code(tt.err), "%v", tt.err)
	}
	assert.NoError(t, chat.Result{}.Err())
	assert.EqualError(t, chat.Result{Code: "weird", Message: "m"}.Err(), "m")
}

func ids(msgs []chat.Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

func TestState_DeleteAccount_LargeHistory(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann, bob := h.register("ann"), h.register("bob")
	var recs []eventlog.Record
	for i := range 700 {
		from, to := ann, bob
		if i%3 == 0 {
			from, to = bob, ann
		}
		recs = append(recs, h.record("", 0, &chat.SendEvent{MessageID: uint64(i + 1), FromUID: from, ToUID: to, Body: "x"}))
	}
	require.NoError(t, h.st.Apply(recs))
	_, err := h.exec("c", 1, chat.DeleteAccount{UID: bob})
	require.NoError(t, err)
	require.NoError(t, h.st.Check(), "consistent while the purge is under way")
	msg, found, err := h.st.Message(699) // ann to bob, among the last
	require.NoError(t, err)
	require.True(t, found)
	assert.True(t, msg.RecipientView, "not purged yet: the purge is bounded per record")

	for range 3 {
		rec := eventlog.Record{Offset: eventlog.Offset(len(h.recs) + 1), Type: "replica.noop"}
		h.recs = append(h.recs, rec)
		require.NoError(t, h.st.Apply([]eventlog.Record{rec}))
		require.NoError(t, h.st.Check())
	}
	msg, found, err = h.st.Message(699)
	require.NoError(t, err)
	require.True(t, found)
	assert.False(t, msg.RecipientView, "purged")
	hist, _, err := h.st.History(ann, "", 0, chat.MaxQueryLimit)
	require.NoError(t, err)
	assert.Len(t, hist, 700, "ann keeps her views of all of them")
	_, found, err = h.st.Message(1)
	require.NoError(t, err)
	assert.True(t, found, "bob's message to ann stays with ann")
	assert.Equal(t, digest(t, h.st), digest(t, replay(t, h.recs, 5)), "the purge is deterministic under any batching")
}
