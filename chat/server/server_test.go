package server

// These tests drive a real Server over loopback TCP with raw wire frames and
// check what a client observes: results, typed errors, pushes, and that the
// server keeps serving after bad input.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/wire"
)

func TestServer_SendReadHistory(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	ts.user(t, "bob")

	var sent wire.SendResponse
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "hi bob"}, &sent)
	assert.NotZero(t, sent.Message.ID)
	assert.Equal(t, "alice", sent.Message.From)
	assert.Equal(t, "bob", sent.Message.To)
	assert.NotZero(t, sent.Message.SentAt)
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "second"}, nil)

	bob := dialRaw(t, ts.addr, "bob-2")
	var login wire.LoginResponse
	bob.mustCall(wire.OpLogin, wire.LoginRequest{User: "bob", Password: "pw-bob"}, &login)
	assert.Equal(t, 2, login.Unread)

	var read wire.ReadResponse
	bob.mustCall(wire.OpRead, wire.ReadRequest{Limit: 1}, &read)
	require.Len(t, read.Messages, 1)
	assert.Equal(t, sent.Message, read.Messages[0], "read returns the message as sent, oldest first")
	bob.mustCall(wire.OpRead, wire.ReadRequest{Limit: 10}, &read)
	require.Len(t, read.Messages, 1)
	assert.Equal(t, "second", read.Messages[0].Body)
	bob.mustCall(wire.OpRead, wire.ReadRequest{Limit: 10}, &read)
	assert.Empty(t, read.Messages, "delivered messages leave the queue")

	var hist wire.HistoryResponse
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{With: "bob", Limit: 10}, &hist)
	require.Len(t, hist.Messages, 2)
	assert.Equal(t, []string{"hi bob", "second"}, []string{hist.Messages[0].Body, hist.Messages[1].Body})
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 1}, &hist)
	require.Len(t, hist.Messages, 1)
	require.NotZero(t, hist.Next, "a page cut short has a next cursor")
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{After: hist.Next, Limit: 10}, &hist)
	require.Len(t, hist.Messages, 1)
	assert.Equal(t, "second", hist.Messages[0].Body)
}

func TestServer_RetriedRequestAppliesOnce(t *testing.T) {
	ts := startServer(t, nil)
	ts.user(t, "bob")
	alice := dialRaw(t, ts.addr, "alice-client")
	alice.mustCall(wire.OpRegister, wire.RegisterRequest{User: "alice", Password: "pw"}, nil)
	alice.mustCall(wire.OpLogin, wire.LoginRequest{User: "alice", Password: "pw"}, nil)
	var first wire.SendResponse
	require.Nil(t, alice.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "once"}, &first, 7))

	// The same client id and seq on a new connection: a retry after a
	// failover. It must get the original message, not a second one.
	again := dialRaw(t, ts.addr, "alice-client")
	again.mustCall(wire.OpLogin, wire.LoginRequest{User: "alice", Password: "pw"}, nil)
	var second wire.SendResponse
	require.Nil(t, again.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "once"}, &second, 7))
	assert.Equal(t, first.Message.ID, second.Message.ID)

	bob := ts.user(t, "bob")
	var read wire.ReadResponse
	bob.mustCall(wire.OpRead, wire.ReadRequest{Limit: 10}, &read)
	assert.Len(t, read.Messages, 1, "the retried send is applied once")

	// A retried read returns the same messages, not the (now empty) queue.
	var reread wire.ReadResponse
	require.Nil(t, bob.call(wire.OpRead, wire.ReadRequest{Limit: 10}, &reread, bob.seq))
	assert.Equal(t, read.Messages, reread.Messages)
}

func TestServer_PushDeliversAndRedeliversUnacked(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	bob := ts.user(t, "bob")
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "queued 1"}, nil)
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "queued 2"}, nil)

	bob.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	assert.Equal(t, "queued 1", bob.nextPush().Body, "queued messages come first, in order")
	assert.Equal(t, "queued 2", bob.nextPush().Body)

	var users wire.UsersResponse
	alice.mustCall(wire.OpUsers, wire.UsersRequest{Pattern: "b*"}, &users)
	require.Len(t, users.Users, 1)
	assert.True(t, users.Users[0].Online, "a listening user is online")

	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "live"}, nil)
	live := bob.nextPush()
	assert.Equal(t, "live", live.Body, "a message to a listening user is pushed at once")
	bob.mustCall(wire.OpAck, wire.AckRequest{IDs: []uint64{live.ID}}, nil)

	// Bob's connection drops with two pushes unacknowledged: they are pushed
	// again on the next listen; the acknowledged one is not.
	bob.conn.Close()
	require.Eventually(t, func() bool { return !ts.srv.online(1) && !ts.srv.online(2) }, 5*time.Second, 10*time.Millisecond)
	alice.mustCall(wire.OpUsers, wire.UsersRequest{Pattern: "bob"}, &users)
	assert.False(t, users.Users[0].Online, "presence ends with the connection")

	bob2 := ts.user(t, "bob")
	var login wire.LoginResponse
	bob2.mustCall(wire.OpLogin, wire.LoginRequest{User: "bob", Password: "pw-bob"}, &login)
	assert.Equal(t, 2, login.Unread)
	bob2.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	m1, m2 := bob2.nextPush(), bob2.nextPush()
	assert.Equal(t, []string{"queued 1", "queued 2"}, []string{m1.Body, m2.Body})
	bob2.mustCall(wire.OpAck, wire.AckRequest{IDs: []uint64{m1.ID, m2.ID}}, nil)
	var read wire.ReadResponse
	bob2.mustCall(wire.OpRead, wire.ReadRequest{Limit: 10}, &read)
	assert.Empty(t, read.Messages, "acknowledged pushes are delivered")
}

func TestServer_PushWindowBoundsUnacked(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.PushWindow = 2 })
	alice := ts.user(t, "alice")
	bob := ts.user(t, "bob")
	for i := range 5 {
		alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: string(rune('a' + i))}, nil)
	}
	bob.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	first, second := bob.nextPush(), bob.nextPush()
	// No third push until an ack frees the window.
	bob.conn.NetConn().SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := bob.conn.ReadFrame()
	require.Error(t, err, "the window holds two unacknowledged pushes")
	bob.conn.NetConn().SetReadDeadline(time.Time{})
	// The timed-out read left the stream intact (no bytes were read), so the
	// connection is still usable.
	bob.mustCall(wire.OpAck, wire.AckRequest{IDs: []uint64{first.ID, second.ID}}, nil)
	assert.Equal(t, "c", bob.nextPush().Body)
	assert.Equal(t, "d", bob.nextPush().Body)
}

func TestServer_TypedErrors(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	ts.user(t, "bob")
	anon := dialRaw(t, ts.addr, "anon")

	var sent wire.SendResponse
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "mine"}, &sent)
	carol := ts.user(t, "carol")

	cases := []struct {
		name string
		c    *rawClient
		op   string
		body any
		want wire.Code
	}{
		{"send before login", anon, wire.OpSend, wire.SendRequest{To: "bob", Body: "x"}, wire.CodeNotLoggedIn},
		{"wrong password", anon, wire.OpLogin, wire.LoginRequest{User: "alice", Password: "nope"}, wire.CodeWrongPassword},
		{"unknown user login", anon, wire.OpLogin, wire.LoginRequest{User: "zed", Password: "x"}, wire.CodeUnknownUser},
		{"invalid name", anon, wire.OpRegister, wire.RegisterRequest{User: "bad name!", Password: "x"}, wire.CodeInvalidName},
		{"duplicate account", anon, wire.OpRegister, wire.RegisterRequest{User: "alice", Password: "x"}, wire.CodeUserExists},
		{"unknown recipient", alice, wire.OpSend, wire.SendRequest{To: "nobody", Body: "x"}, wire.CodeUnknownUser},
		{"empty message", alice, wire.OpSend, wire.SendRequest{To: "bob", Body: ""}, wire.CodeEmptyMessage},
		{"oversized message", alice, wire.OpSend, wire.SendRequest{To: "bob", Body: strings.Repeat("x", 5000)}, wire.CodeMessageTooLarge},
		{"delete another's message", carol, wire.OpDeleteMessages, wire.DeleteMessagesRequest{IDs: []uint64{sent.Message.ID}}, wire.CodeForbidden},
		{"delete a missing message", alice, wire.OpDeleteMessages, wire.DeleteMessagesRequest{IDs: []uint64{999}}, wire.CodeNotFound},
		{"unknown op", alice, "frobnicate", struct{}{}, wire.CodeUnknownOp},
		{"bad pattern", alice, wire.OpUsers, wire.UsersRequest{Pattern: "["}, wire.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			werr := tc.c.call(tc.op, tc.body, nil)
			require.NotNil(t, werr)
			assert.Equal(t, tc.want, werr.Code, werr.Message)
			assert.NotEmpty(t, werr.Message)
			// The connection survives every error.
			tc.c.mustCall(wire.OpPing, wire.PingRequest{}, nil)
		})
	}
}

func TestServer_LoginRateLimited(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ts := startServer(t, func(c *Config) {
		c.LoginFailures = 3
		c.Now = func() time.Time { return now }
	})
	ts.user(t, "alice")
	c := dialRaw(t, ts.addr, "guesser")
	for range 3 {
		werr := c.call(wire.OpLogin, wire.LoginRequest{User: "alice", Password: "guess"}, nil)
		require.Equal(t, wire.CodeWrongPassword, werr.Code)
	}
	werr := c.call(wire.OpLogin, wire.LoginRequest{User: "alice", Password: "pw-alice"}, nil)
	require.NotNil(t, werr, "even the right password is refused while locked out")
	assert.Equal(t, wire.CodeRateLimited, werr.Code)
	// The lockout is per name: others log in.
	ts.user(t, "bob")
	now = now.Add(2 * time.Minute)
	c.mustCall(wire.OpLogin, wire.LoginRequest{User: "alice", Password: "pw-alice"}, nil)
}

func TestServer_BadInputKeepsServing(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	alice := ts.user(t, "alice")
	ts.user(t, "bob")

	send := func(raw []byte) net.Conn {
		nc, err := net.Dial("tcp", ts.addr)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		_, err = nc.Write(raw)
		require.NoError(t, err)
		return nc
	}
	oversize := binary.BigEndian.AppendUint32(nil, 1<<30)
	garbage := bytes.Repeat([]byte{0x00, 0x00, 0x00, 0x05, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1}, 3)
	half := []byte{0x00, 0x00, 0x01}
	conns := []net.Conn{send(oversize), send(garbage), send(half), send([]byte("GET / HTTP/1.1\r\n\r\n")), send(nil)}

	// Every bad connection is closed by the server (within the handshake
	// timeout for the silent ones) ...
	for i, nc := range conns {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := readAll(nc)
		assert.NoError(t, err, "connection %d: the server closes it rather than hanging", i)
	}
	// ... and everyone else is served throughout.
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "still here"}, nil)

	// After the hello, a frame over the limit gets a typed error, then close.
	c := dialRaw(t, ts.addr, "big")
	c.conn.SetMaxFrame(4 << 20)
	big, err := wire.NewRequest(9, wire.OpPing, 0, wire.SendRequest{Body: strings.Repeat("x", 2<<20)})
	require.NoError(t, err)
	require.NoError(t, c.conn.WriteFrame(big))
	f, err := c.conn.ReadFrame()
	require.NoError(t, err)
	require.NotNil(t, f.Error)
	assert.Equal(t, wire.CodeFrameTooLarge, f.Error.Code)
	alice.mustCall(wire.OpPing, wire.PingRequest{}, nil)
}

// readAll reads until EOF, returning an error only for a timeout.
func readAll(nc net.Conn) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return buf.Bytes(), err
	}
	return buf.Bytes(), nil
}

func TestServer_TooManyConnections(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConns = 2 })
	dialRaw(t, ts.addr, "one")
	dialRaw(t, ts.addr, "two")
	nc, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer nc.Close()
	conn := wire.NewConn(nc, 0)
	_, err = conn.Handshake(t.Context(), wire.Hello{Role: wire.RoleClient, ClientID: "three"})
	var werr *wire.Error
	require.ErrorAs(t, err, &werr)
	assert.Equal(t, wire.CodeTooManyConnections, werr.Code)
}

func TestServer_BackupRedirects(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	ts.repl.setBackup(true, "")
	werr := alice.call(wire.OpSend, wire.SendRequest{To: "alice", Body: "x"}, nil)
	require.NotNil(t, werr)
	assert.Equal(t, wire.CodeNotPrimary, werr.Code)
	assert.Equal(t, "127.0.0.1:1", werr.Primary, "not_primary carries the primary's address")
	assert.True(t, werr.Code.Retryable())

	ts.repl.setBackup(true, "restarted; waiting to hear from replica 2")
	werr = alice.call(wire.OpUsers, wire.UsersRequest{}, nil)
	require.NotNil(t, werr)
	assert.Equal(t, wire.CodeUnavailable, werr.Code)
	assert.Contains(t, werr.Message, "waiting to hear from replica 2", "the client is told why")

	var st wire.StatusResponse
	alice.mustCall(wire.OpStatus, wire.StatusRequest{}, &st)
	require.Len(t, st.Replicas, 1)
	assert.Equal(t, wire.RoleBackup, st.Replicas[0].Role, "status works on a backup")
}

func TestServer_DeleteAccountAndReuseName(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	bob := ts.user(t, "bob")
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "for the first bob"}, nil)
	var del wire.DeleteAccountResponse
	bob.mustCall(wire.OpDeleteAccount, wire.DeleteAccountRequest{}, &del)
	assert.Equal(t, "bob", del.User)
	werr := bob.call(wire.OpRead, wire.ReadRequest{}, nil)
	require.NotNil(t, werr)
	assert.Equal(t, wire.CodeNotLoggedIn, werr.Code, "deleting the account logs the session out")

	newBob := ts.user(t, "bob")
	var read wire.ReadResponse
	newBob.mustCall(wire.OpRead, wire.ReadRequest{Limit: 10}, &read)
	assert.Empty(t, read.Messages, "a new account of the same name sees nothing of the old one")
	var hist wire.HistoryResponse
	newBob.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 10}, &hist)
	assert.Empty(t, hist.Messages)
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 10}, &hist)
	assert.Len(t, hist.Messages, 1, "the sender keeps its view of what it sent")
}

func TestServer_DeleteMessages(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	bob := ts.user(t, "bob")
	var s1, s2 wire.SendResponse
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "one"}, &s1)
	alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "two"}, &s2)
	var del wire.DeleteMessagesResponse
	alice.mustCall(wire.OpDeleteMessages, wire.DeleteMessagesRequest{IDs: []uint64{s1.Message.ID}}, &del)
	assert.Equal(t, []uint64{s1.Message.ID}, del.Deleted)
	var hist wire.HistoryResponse
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 10}, &hist)
	require.Len(t, hist.Messages, 1)
	assert.Equal(t, "two", hist.Messages[0].Body)
	bob.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 10}, &hist)
	assert.Len(t, hist.Messages, 2, "deleting removes the caller's view only")
}

func TestServer_UsersWildcardAndPaging(t *testing.T) {
	ts := startServer(t, nil)
	for _, n := range []string{"ann", "anna", "bob", "annie"} {
		ts.user(t, n)
	}
	c := dialRaw(t, ts.addr, "lister")
	var page wire.UsersResponse
	c.mustCall(wire.OpUsers, wire.UsersRequest{Pattern: "ann*", Limit: 2}, &page)
	require.Len(t, page.Users, 2)
	assert.Equal(t, "ann", page.Users[0].Name)
	assert.Equal(t, "anna", page.Users[1].Name)
	require.NotEmpty(t, page.Next)
	c.mustCall(wire.OpUsers, wire.UsersRequest{Pattern: "ann*", After: page.Next, Limit: 2}, &page)
	require.Len(t, page.Users, 1)
	assert.Equal(t, "annie", page.Users[0].Name)
	assert.Empty(t, page.Next)
	c.mustCall(wire.OpUsers, wire.UsersRequest{Pattern: "?ob"}, &page)
	require.Len(t, page.Users, 1)
	assert.Equal(t, "bob", page.Users[0].Name)
}

func TestServer_StepDownClosesClientConnections(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	alice.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	require.Eventually(t, ts.srv.watchedPrimary.Load, 5*time.Second, time.Millisecond)
	ts.repl.setBackup(true, "")
	alice.conn.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := alice.conn.ReadFrame()
	require.Error(t, err, "the deposed primary closes the connection")
	var ne net.Error
	if errors.As(err, &ne) {
		assert.False(t, ne.Timeout(), "closed, not timed out")
	}
}

func TestServer_HashSlotsBoundConcurrentHashing(t *testing.T) {
	ts := startServer(t, nil)
	n := cap(ts.srv.hashSlots)
	require.Positive(t, n)
	var releases []func()
	for range n {
		release, err := ts.srv.hashSlot(t.Context())
		require.NoError(t, err)
		releases = append(releases, release)
	}
	// Every slot is taken: a login waits, and gives up with its context.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := ts.srv.hashSlot(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	releases[0]()
	release, err := ts.srv.hashSlot(t.Context())
	require.NoError(t, err, "a freed slot is taken again")
	release()
	for _, r := range releases[1:] {
		r()
	}
}
