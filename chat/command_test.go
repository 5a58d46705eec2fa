package chat_test

// Goal: Decide turns every valid command into the right event, with the
// primary's non-deterministic choices (message id, salt) in it, and rejects
// every invalid command with the right error code before it reaches the log.

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

func TestDecide(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann, bob := h.register("ann"), h.register("bob")
	toBob := h.send(ann, "bob", "hi bob")
	toAnn := h.send(bob, "ann", "hi ann")
	gone := h.send(ann, "bob", "deleted by ann")
	_, err := h.exec("c", 1000, chat.DeleteMessages{UID: ann, IDs: []uint64{gone}})
	require.NoError(t, err)
	next := h.nextID + 1
	o := h.origins

	tests := []struct {
		name string
		cmd  chat.Command
		want chat.Event // nil: check only that it is a RegisterEvent
		code string
	}{
		{"register", chat.Register{Name: "cy.d-e_F", Password: "pw"}, nil, ""},
		{"register empty name", chat.Register{Name: "", Password: "pw"}, nil, "invalid_name"},
		{"register long name", chat.Register{Name: strings.Repeat("a", 33), Password: "pw"}, nil, "invalid_name"},
		{"register bad char", chat.Register{Name: "a/b", Password: "pw"}, nil, "invalid_name"},
		{"register space", chat.Register{Name: "a b", Password: "pw"}, nil, "invalid_name"},
		{"register empty password", chat.Register{Name: "cy", Password: ""}, nil, "invalid_argument"},
		{"register long password", chat.Register{Name: "cy", Password: strings.Repeat("p", 1025)}, nil, "invalid_argument"},
		{"register taken", chat.Register{Name: "ann", Password: "pw"}, nil, "user_exists"},

		{"send", chat.Send{FromUID: ann, To: "bob", Body: "yo"},
			&chat.SendEvent{MessageID: next, FromUID: ann, ToUID: bob, Body: "yo", FromOrigin: o[ann], ToOrigin: o[bob]}, ""},
		{"send to self", chat.Send{FromUID: ann, To: "ann", Body: "note"},
			&chat.SendEvent{MessageID: next, FromUID: ann, ToUID: ann, Body: "note", FromOrigin: o[ann], ToOrigin: o[ann]}, ""},
		{"send max body", chat.Send{FromUID: ann, To: "bob", Body: strings.Repeat("x", chat.MaxBodyBytes)},
			&chat.SendEvent{MessageID: next, FromUID: ann, ToUID: bob, Body: strings.Repeat("x", chat.MaxBodyBytes),
				FromOrigin: o[ann], ToOrigin: o[bob]}, ""},
		{"send empty", chat.Send{FromUID: ann, To: "bob", Body: ""}, nil, "empty_message"},
		{"send too large", chat.Send{FromUID: ann, To: "bob", Body: strings.Repeat("x", chat.MaxBodyBytes+1)}, nil, "message_too_large"},
		{"send not utf8", chat.Send{FromUID: ann, To: "bob", Body: "\xff"}, nil, "invalid_argument"},
		{"send unknown sender", chat.Send{FromUID: 99, To: "bob", Body: "x"}, nil, "unknown_user"},
		{"send unknown recipient", chat.Send{FromUID: ann, To: "zed", Body: "x"}, nil, "unknown_user"},
		{"send invalid recipient", chat.Send{FromUID: ann, To: "z z", Body: "x"}, nil, "invalid_name"},

		{"deliver", chat.Deliver{UID: bob, MessageIDs: []uint64{toBob, toBob}},
			&chat.DeliverEvent{UID: bob, MessageIDs: []uint64{toBob}, Origin: o[bob]}, ""},
		{"deliver none", chat.Deliver{UID: bob}, nil, "invalid_argument"},
		{"deliver too many", chat.Deliver{UID: bob, MessageIDs: make([]uint64, chat.MaxIDsPerCommand+1)}, nil, "invalid_argument"},
		{"deliver unknown user", chat.Deliver{UID: 99, MessageIDs: []uint64{toBob}}, nil, "unknown_user"},
		{"deliver missing", chat.Deliver{UID: bob, MessageIDs: []uint64{toBob, 12345}}, nil, "not_found"},
		{"deliver not mine", chat.Deliver{UID: bob, MessageIDs: []uint64{toAnn}}, nil, "forbidden"},

		{"delete messages", chat.DeleteMessages{UID: ann, IDs: []uint64{toAnn, toBob}},
			&chat.DeleteMessagesEvent{UID: ann, IDs: []uint64{toBob, toAnn}, Origin: o[ann]}, ""},
		{"delete none", chat.DeleteMessages{UID: ann}, nil, "invalid_argument"},
		{"delete unknown user", chat.DeleteMessages{UID: 99, IDs: []uint64{toBob}}, nil, "unknown_user"},
		{"delete missing", chat.DeleteMessages{UID: ann, IDs: []uint64{toBob, 12345}}, nil, "not_found"},
		{"delete own view gone", chat.DeleteMessages{UID: ann, IDs: []uint64{gone}}, nil, "not_found"},
		{"delete others'", chat.DeleteMessages{UID: h.register("cy"), IDs: []uint64{toBob}}, nil, "forbidden"},

		{"delete account", chat.DeleteAccount{UID: bob}, &chat.DeleteAccountEvent{UID: bob, Origin: o[bob]}, ""},
		{"delete unknown account", chat.DeleteAccount{UID: 99}, nil, "unknown_user"},
		{"nil command", nil, nil, "invalid_argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.nextID = next - 1
			evs, err := chat.Decide(h.st, h.env, tt.cmd)
			if tt.code != "" {
				require.Error(t, err)
				assert.Equal(t, tt.code, chat.Code(err), "error %v", err)
				assert.Nil(t, evs)
				return
			}
			require.NoError(t, err)
			require.Len(t, evs, 1)
			if tt.want != nil {
				assert.Equal(t, tt.want, evs[0])
				return
			}
			reg, ok := evs[0].(*chat.RegisterEvent)
			require.True(t, ok, "got %T", evs[0])
			assert.Equal(t, tt.cmd.(chat.Register).Name, reg.Name)
			assert.True(t, reg.Origin, "the account takes its origin from its request")
			assert.True(t, strings.HasPrefix(reg.PasswordHash, "$argon2id$v=19$m=8,t=1,p=1$"), reg.PasswordHash)
			assert.NotContains(t, reg.PasswordHash, "pw")
		})
	}
}

func TestDecide_Register_SaltPerAccount(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	a, err := chat.Decide(h.st, h.env, chat.Register{Name: "ann", Password: "same"})
	require.NoError(t, err)
	b, err := chat.Decide(h.st, h.env, chat.Register{Name: "bob", Password: "same"})
	require.NoError(t, err)
	assert.NotEqual(t, a[0].(*chat.RegisterEvent).PasswordHash, b[0].(*chat.RegisterEvent).PasswordHash)
}

func TestDecide_EnvErrors(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	tests := []struct {
		name string
		env  func(chat.Env) chat.Env
		cmd  chat.Command
	}{
		{"nil rand", func(e chat.Env) chat.Env { e.Rand = nil; return e }, chat.Register{Name: "x", Password: "p"}},
		{"short rand", func(e chat.Env) chat.Env { e.Rand = strings.NewReader("short"); return e }, chat.Register{Name: "x", Password: "p"}},
		{"bad argon", func(e chat.Env) chat.Env { e.Argon = chat.ArgonParams{Time: 1, MemoryKiB: 1, Threads: 1}; return e }, chat.Register{Name: "x", Password: "p"}},
		{"nil id source", func(e chat.Env) chat.Env { e.NewMessageID = nil; return e }, chat.Send{FromUID: ann, To: "ann", Body: "b"}},
		{"zero id", func(e chat.Env) chat.Env { e.NewMessageID = func() uint64 { return 0 }; return e }, chat.Send{FromUID: ann, To: "ann", Body: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chat.Decide(h.st, tt.env(h.env), tt.cmd)
			require.Error(t, err)
		})
	}
}

func TestDecide_QueueFull(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann, bob := h.register("ann"), h.register("bob")
	// Fill bob's queue with events straight into the log (no Decide).
	var fill []eventlog.Record
	for i := range chat.MaxUnread {
		fill = append(fill, h.record("", 0, &chat.SendEvent{MessageID: uint64(1e6 + i), FromUID: ann, ToUID: bob, Body: "x"}))
	}
	require.NoError(t, h.st.Apply(fill))
	_, err := chat.Decide(h.st, h.env, chat.Send{FromUID: ann, To: "bob", Body: "one more"})
	var qf *chat.QueueFullError
	require.ErrorAs(t, err, &qf)
	assert.Equal(t, "bob", qf.To)
	assert.ErrorIs(t, err, chat.ErrQueueFull)
	assert.Equal(t, "queue_full", chat.Code(err))

	// Applying a send decided earlier is rejected the same way.
	rec := h.record("late", 1, &chat.SendEvent{MessageID: 42, FromUID: ann, ToUID: bob, Body: "x"})
	require.NoError(t, h.st.Apply([]eventlog.Record{rec}))
	res, ok, err := h.st.Result("late", 1)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "queue_full", res.Code)
	assert.ErrorIs(t, res.Err(), chat.ErrQueueFull)

	// Reading frees room.
	unread, err := h.st.Unread(bob, 1)
	require.NoError(t, err)
	_, err = h.exec("c", 1, chat.Deliver{UID: bob, MessageIDs: []uint64{unread[0].ID}})
	require.NoError(t, err)
	_, err = h.exec("c", 2, chat.Send{FromUID: ann, To: "bob", Body: "now fits"})
	require.NoError(t, err)
	require.NoError(t, h.st.Check())
}

// viewCounter counts the reads of read transactions (Decide's).
type viewCounter struct {
	chat.Store
	gets int
}

type countedKV struct {
	chat.KV
	n *int
}

func (k countedKV) Get(key []byte) ([]byte, bool, error) { *k.n++; return k.KV.Get(key) }

func (s *viewCounter) View(fn func(chat.KV) error) error {
	return s.Store.View(func(kv chat.KV) error { return fn(countedKV{kv, &s.gets}) })
}

// TestDecide_ReadsCommittedUsers: Decide takes the user records Apply has
// cached (so a send costs one store read, the recipient's name), and the
// cache never makes it accept what the store no longer holds.
func TestDecide_ReadsCommittedUsers(t *testing.T) {
	store := &viewCounter{Store: chat.NewMemStore()}
	h := newHarness(t, store)
	ann, bob := h.register("ann"), h.register("bob")
	h.send(ann, "bob", "warm the cache")

	store.gets = 0
	_, err := chat.Decide(h.st, h.env, chat.Send{FromUID: ann, To: "bob", Body: "x"})
	require.NoError(t, err)
	assert.Equal(t, 1, store.gets, "only the name is read from the store")

	_, err = h.exec("bob", 1, chat.DeleteAccount{UID: bob})
	require.NoError(t, err)
	_, err = chat.Decide(h.st, h.env, chat.Send{FromUID: ann, To: "bob", Body: "x"})
	assert.Equal(t, "unknown_user", chat.Code(err))
	_, err = chat.Decide(h.st, h.env, chat.Send{FromUID: bob, To: "ann", Body: "x"})
	assert.Equal(t, "unknown_user", chat.Code(err), "a deleted sender is refused")
}
