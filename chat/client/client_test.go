// Tests of the client library against the fake cluster of clienttest: how
// it finds the primary, retries through failover with the same Seq, reports
// final errors, pipelines, listens, merges status and stops.
package client_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/client"
	"github.com/replichat/replichat/chat/client/clienttest"
	"github.com/replichat/replichat/chat/wire"
)

// testConfig is a Config with short timeouts, so that failure paths are
// quick.
func testConfig(servers ...string) client.Config {
	return client.Config{
		Servers:         servers,
		DialTimeout:     time.Second,
		RequestTimeout:  2 * time.Second,
		FailoverTimeout: 5 * time.Second,
	}
}

// dialAs starts a client logged in as user (whose account it creates).
func dialAs(t *testing.T, cl *clienttest.Cluster, user string) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), testConfig(cl.Addrs()...))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	cl.AddUser(user, "pw-"+user)
	_, err = c.Login(t.Context(), user, "pw-"+user)
	require.NoError(t, err)
	return c
}

// requestsOf returns the recorded requests with op from the client.
func requestsOf(cl *clienttest.Cluster, c *client.Client, op string) []clienttest.Request {
	var out []clienttest.Request
	for _, r := range cl.Requests() {
		if r.ClientID == c.ClientID() && r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

func TestNew_Config(t *testing.T) {
	_, err := client.New(client.Config{})
	require.ErrorIs(t, err, client.ErrNoServers)

	for _, bad := range []string{"127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", "[::1"} {
		_, err = client.New(client.Config{Servers: []string{"127.0.0.1:7100", bad}})
		require.ErrorIs(t, err, client.ErrBadServer, "%q", bad)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", bad))
	}

	_, err = client.New(client.Config{Servers: []string{"x:1"}, ClientID: strings.Repeat("a", wire.MaxClientIDLen+1)})
	require.Error(t, err)

	_, err = client.New(client.Config{Servers: []string{"x:1"}, RequestTimeout: -time.Second})
	require.Error(t, err)

	a, err := client.New(client.Config{Servers: []string{"x:1"}})
	require.NoError(t, err)
	b, err := client.New(client.Config{Servers: []string{"x:1"}})
	require.NoError(t, err)
	assert.Len(t, a.ClientID(), 32, "16 random bytes in hex")
	assert.NotEqual(t, a.ClientID(), b.ClientID())
}

func TestDial_FollowsBackupHint(t *testing.T) {
	tests := []struct {
		name    string
		primary int
		servers func(cl *clienttest.Cluster) []string
	}{
		{"first server is primary", 0, func(cl *clienttest.Cluster) []string { return cl.Addrs() }},
		{"hint to a listed server", 2, func(cl *clienttest.Cluster) []string { return cl.Addrs() }},
		{"hint to an unlisted server", 2, func(cl *clienttest.Cluster) []string { return cl.Addrs()[:1] }},
		{"first server down", 1, func(cl *clienttest.Cluster) []string {
			cl.Stop(0)
			return cl.Addrs()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := clienttest.Start(t, 3)
			cl.SetPrimary(tt.primary)
			c, err := client.Dial(t.Context(), testConfig(tt.servers(cl)...))
			require.NoError(t, err)
			defer c.Close()
			assert.Equal(t, cl.Addr(tt.primary), c.Primary())
		})
	}
}

func TestClient_RetryReusesSeqAndLogsInAgain(t *testing.T) {
	for _, mode := range []clienttest.FaultMode{clienttest.CutBeforeApply, clienttest.CutAfterApply, clienttest.Swallow} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			cl := clienttest.Start(t, 3)
			cfg := testConfig(cl.Addrs()...)
			if mode == clienttest.Swallow {
				cfg.RequestTimeout = 200 * time.Millisecond
			}
			c, err := client.Dial(t.Context(), cfg)
			require.NoError(t, err)
			defer c.Close()
			cl.AddUser("alice", "pw")
			cl.AddUser("bob", "pw")
			_, err = c.Login(t.Context(), "alice", "pw")
			require.NoError(t, err)
			first, err := c.Send(t.Context(), "bob", "first")
			require.NoError(t, err)

			cl.Inject(clienttest.Fault{Op: wire.OpSend, Mode: mode, Count: 1})
			m, err := c.Send(t.Context(), "bob", "hello")
			require.NoError(t, err)
			assert.Equal(t, "alice", m.From)
			assert.Equal(t, "hello", m.Body)

			sends := requestsOf(cl, c, wire.OpSend)
			require.Len(t, sends, 3)
			assert.NotEqual(t, sends[0].Seq, sends[1].Seq)
			assert.Equal(t, sends[1].Seq, sends[2].Seq, "the retry reuses the Seq")
			assert.Equal(t, mode == clienttest.CutAfterApply, sends[2].Replayed)
			assert.Len(t, requestsOf(cl, c, wire.OpLogin), 2, "logged in again on the new connection")
			assert.Len(t, requestsOf(cl, c, wire.OpHello), 0, "hello is not recorded as a request")

			var bodies []string
			for _, s := range cl.Sent() {
				bodies = append(bodies, s.Body)
			}
			assert.Equal(t, []string{"first", "hello"}, bodies, "applied exactly once")
			assert.Equal(t, first.ID+1, m.ID)
		})
	}
}

func TestClient_FollowsFailover(t *testing.T) {
	cl := clienttest.Start(t, 3)
	c := dialAs(t, cl, "alice")
	cl.AddUser("bob", "pw")
	_, err := c.Send(t.Context(), "bob", "one")
	require.NoError(t, err)

	cl.Stop(0)
	cl.SetPrimary(2)
	_, err = c.Send(t.Context(), "bob", "two")
	require.NoError(t, err)
	assert.Equal(t, cl.Addr(2), c.Primary())
	sends := requestsOf(cl, c, wire.OpSend)
	require.NotEmpty(t, sends)
	assert.Equal(t, 2, sends[len(sends)-1].Server)
}

func TestClient_RetryableReplyFollowsHint(t *testing.T) {
	cl := clienttest.Start(t, 3)
	c := dialAs(t, cl, "alice")
	cl.AddUser("bob", "pw")
	// Replica 0 says it is not primary any more and names replica 1.
	cl.SetPrimary(1)
	_, err := c.Send(t.Context(), "bob", "one")
	require.NoError(t, err)
	assert.Equal(t, cl.Addr(1), c.Primary())

	cl.Inject(clienttest.Fault{Op: wire.OpSend, Mode: clienttest.ReplyError, Code: wire.CodeUnavailable, Count: 2})
	_, err = c.Send(t.Context(), "bob", "two")
	require.NoError(t, err)
	sends := requestsOf(cl, c, wire.OpSend)
	require.Len(t, sends, 4)
	assert.Equal(t, sends[1].Seq, sends[2].Seq)
	assert.Equal(t, sends[1].Seq, sends[3].Seq)
	assert.Len(t, cl.Sent(), 2)
}

func TestClient_FinalErrors(t *testing.T) {
	cl := clienttest.Start(t, 1)
	c := dialAs(t, cl, "alice")
	cl.AddUser("bob", "pw")

	tests := []struct {
		name string
		op   string
		call func(ctx context.Context) error
		want wire.Code
	}{
		{"send to nobody", wire.OpSend, func(ctx context.Context) error { _, err := c.Send(ctx, "nobody", "x"); return err }, wire.CodeUnknownUser},
		{"empty message", wire.OpSend, func(ctx context.Context) error { _, err := c.Send(ctx, "bob", ""); return err }, wire.CodeEmptyMessage},
		{"register taken", wire.OpRegister, func(ctx context.Context) error { return c.Register(ctx, "bob", "x") }, wire.CodeUserExists},
		{"bad name", wire.OpRegister, func(ctx context.Context) error { return c.Register(ctx, "b b", "x") }, wire.CodeInvalidName},
		{"delete unknown", wire.OpDeleteMessages, func(ctx context.Context) error { _, err := c.DeleteMessages(ctx, []uint64{99}); return err }, wire.CodeNotFound},
		{"history unknown", wire.OpHistory, func(ctx context.Context) error { _, _, err := c.History(ctx, "nobody", 0, 0); return err }, wire.CodeUnknownUser},
		{"wrong password", wire.OpLogin, func(ctx context.Context) error { _, err := c.Login(ctx, "bob", "bad"); return err }, wire.CodeWrongPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(requestsOf(cl, c, tt.op))
			err := tt.call(t.Context())
			var e *client.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.want, e.Code)
			assert.NotEmpty(t, e.Message)
			assert.False(t, e.Retryable())
			assert.Len(t, requestsOf(cl, c, tt.op), before+1, "no retry")
		})
	}
	// The failed login kept the session: alice is still logged in.
	assert.Equal(t, "alice", c.User())
	_, err := c.Send(t.Context(), "bob", "still alice")
	require.NoError(t, err)
}

func TestClient_Operations(t *testing.T) {
	cl := clienttest.Start(t, 1)
	c, err := client.Dial(t.Context(), testConfig(cl.Addrs()...))
	require.NoError(t, err)
	defer c.Close()
	ctx := t.Context()

	require.NoError(t, c.Register(ctx, "alice", "pa"))
	require.NoError(t, c.Register(ctx, "bob", "pb"))
	users, next, err := c.Users(ctx, "a*", "", 0)
	require.NoError(t, err)
	assert.Equal(t, []wire.UserInfo{{Name: "alice"}}, users)
	assert.Empty(t, next)

	cl.Post("bob", "alice", "queued")
	unread, err := c.Login(ctx, "alice", "pa")
	require.NoError(t, err)
	assert.Equal(t, 1, unread)
	users, _, err = c.Users(ctx, "", "", 1)
	require.NoError(t, err)
	assert.Equal(t, []wire.UserInfo{{Name: "alice", Online: true}}, users)

	sent, err := c.Send(ctx, "bob", "hi")
	require.NoError(t, err)
	assert.Equal(t, wire.Message{ID: 2, From: "alice", To: "bob", Body: "hi", SentAt: clienttest.SentAt(2)}, sent)

	msgs, err := c.Read(ctx, 0)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "queued", msgs[0].Body)

	hist, next2, err := c.History(ctx, "bob", 0, 1)
	require.NoError(t, err)
	require.Len(t, hist, 1)
	assert.Equal(t, uint64(1), next2)
	hist, next2, err = c.History(ctx, "bob", next2, 1)
	require.NoError(t, err)
	assert.Equal(t, []wire.Message{sent}, hist)
	assert.Zero(t, next2)

	deleted, err := c.DeleteMessages(ctx, []uint64{1})
	require.NoError(t, err)
	assert.Equal(t, []uint64{1}, deleted)

	require.NoError(t, c.Logout(ctx))
	assert.Empty(t, c.User())
	_, err = c.Send(ctx, "bob", "x")
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, wire.CodeNotLoggedIn, e.Code)

	_, err = c.Login(ctx, "alice", "pa")
	require.NoError(t, err)
	user, err := c.DeleteAccount(ctx)
	require.NoError(t, err)
	assert.Equal(t, "alice", user)
	assert.Empty(t, c.User())
}

func TestClient_DeleteAccountRetriedAfterApply(t *testing.T) {
	cl := clienttest.Start(t, 1)
	c := dialAs(t, cl, "alice")
	cl.Inject(clienttest.Fault{Op: wire.OpDeleteAccount, Mode: clienttest.CutAfterApply, Count: 1})
	user, err := c.DeleteAccount(t.Context())
	require.NoError(t, err, "the account is gone: the request was applied")
	assert.Equal(t, "alice", user)
	assert.Empty(t, c.User())
}

func TestClient_Concurrent(t *testing.T) {
	cl := clienttest.Start(t, 3)
	c := dialAs(t, cl, "alice")
	cl.AddUser("bob", "pw")
	const workers, each = 8, 25
	ids := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if w == 0 && i == each/2 {
					cl.Cut(0) // a reconnect in the middle of it all
				}
				m, err := c.Send(t.Context(), "bob", fmt.Sprintf("%d-%d", w, i))
				if !assert.NoError(t, err) {
					return
				}
				ids <- m.ID
				_, _, err = c.History(t.Context(), "bob", 0, 5)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := make(map[uint64]bool)
	for id := range ids {
		assert.False(t, seen[id], "id %d twice", id)
		seen[id] = true
	}
	assert.Len(t, seen, workers*each)
	assert.Len(t, cl.Sent(), workers*each, "each send applied once")

	seqs := make(map[uint64]int)
	for _, r := range requestsOf(cl, c, wire.OpSend) {
		if !r.Replayed {
			seqs[r.Seq]++
		}
	}
	for seq, n := range seqs {
		assert.Equal(t, 1, n, "seq %d applied %d times", seq, n)
	}
}

func TestClient_FailoverTimeout(t *testing.T) {
	cl := clienttest.Start(t, 2)
	cl.SetPrimary(-1)
	cfg := testConfig(cl.Addrs()...)
	cfg.FailoverTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := client.Dial(t.Context(), cfg)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, client.ErrFailoverTimeout)
	var e *client.Error
	require.ErrorAs(t, err, &e, "the last failure is kept")
	assert.Equal(t, wire.CodeNotPrimary, e.Code)
	assert.GreaterOrEqual(t, elapsed, cfg.FailoverTimeout)
	assert.Less(t, elapsed, cfg.FailoverTimeout+cfg.DialTimeout, "gives up at the failover timeout")

	// The error says why, in the replicas' words.
	cl.SetWaiting("restarted; waiting to hear from replica 2")
	_, err = client.Dial(t.Context(), cfg)
	require.ErrorIs(t, err, client.ErrFailoverTimeout)
	var ue *client.UnavailableError
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Replicas, 2)
	assert.Contains(t, err.Error(), "replicas 0, 1: restarted; waiting to hear from replica 2")
	require.ErrorAs(t, err, &e, "the last failure is still kept")

	// Also when every server is down.
	cl.Stop(0)
	cl.Stop(1)
	_, err = client.Dial(t.Context(), cfg)
	require.ErrorIs(t, err, client.ErrFailoverTimeout)
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "replicas 0, 1: down (connection refused)", ue.Error())

	// ctx ends first: its error, not a failover timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	cfg.FailoverTimeout = time.Minute
	_, err = client.Dial(ctx, cfg)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, client.ErrFailoverTimeout)
}

func TestClient_Status(t *testing.T) {
	cl := clienttest.Start(t, 3)
	cl.SetPrimary(1)
	cl.Stop(2)
	c, err := client.New(testConfig(cl.Addrs()...))
	require.NoError(t, err)
	defer c.Close()

	st, err := c.Status(t.Context())
	require.NoError(t, err)
	require.Len(t, st, 3)
	var roles, addrs []string
	for i, r := range st {
		assert.Equal(t, uint32(i), r.ID)
		roles = append(roles, r.Role)
		addrs = append(addrs, r.Addr)
	}
	assert.Equal(t, []string{wire.RoleBackup, wire.RolePrimary, wire.RoleDown}, roles)
	assert.Equal(t, cl.Addrs(), addrs)
	assert.Empty(t, c.Primary(), "status needs no primary connection")

	// A replica the client does not know about comes from the others.
	c2, err := client.New(testConfig(cl.Addr(0)))
	require.NoError(t, err)
	defer c2.Close()
	st, err = c2.Status(t.Context())
	require.NoError(t, err)
	require.Len(t, st, 3)
	assert.Equal(t, wire.RolePrimary, st[1].Role)
	assert.Equal(t, cl.Addr(1), st[1].Addr)

	// The others are asked too, at the addresses the answers give: a
	// replica that is down then has no numbers, not a peer's view of it.
	assert.Equal(t, wire.ReplicaStatus{ID: 2, Addr: cl.Addr(2), Role: wire.RoleDown, Waiting: "connection refused"}, st[2])

	// Nobody answers: every configured server is down, ids by position.
	cl.Stop(0)
	cl.Stop(1)
	st, err = c.Status(t.Context())
	require.NoError(t, err)
	require.Len(t, st, 3)
	for i, r := range st {
		assert.Equal(t, wire.ReplicaStatus{ID: uint32(i), Addr: cl.Addr(i), Role: wire.RoleDown, Waiting: "connection refused"}, r)
	}
}

func TestClient_StatusInSyncIsThePrimarysWord(t *testing.T) {
	cl := clienttest.Start(t, 3)
	cl.SetPrimary(0)
	cl.SetInSync(2, false)
	c, err := client.New(testConfig(cl.Addrs()...))
	require.NoError(t, err)
	defer c.Close()
	st, err := c.Status(t.Context())
	require.NoError(t, err)
	require.Len(t, st, 3)
	assert.Equal(t, []bool{true, true, false}, []bool{st[0].InSync, st[1].InSync, st[2].InSync})
	assert.True(t, client.Serving(st[0]))
	assert.False(t, client.Serving(st[1]))
}

func TestClient_Listen(t *testing.T) {
	cl := clienttest.Start(t, 3)
	c := dialAs(t, cl, "bob")
	cl.AddUser("alice", "pw")
	q1 := cl.Post("alice", "bob", "queued one")
	q2 := cl.Post("alice", "bob", "queued two")

	got := make(chan wire.Message)
	proceed := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(ctx, func(m wire.Message) error {
			got <- m
			<-proceed
			return nil
		})
	}()

	// Queued messages first, each still queued while fn runs.
	m := <-got
	assert.Equal(t, q1, m)
	assert.Contains(t, cl.Queued("bob"), q1.ID, "not acked before fn returns")
	// The ack of the first batch is lost with the connection: the
	// messages still queued are pushed again after the reconnect, and must
	// not reach fn again.
	cl.Inject(clienttest.Fault{Op: wire.OpAck, Mode: clienttest.CutBeforeApply, Count: 1})
	proceed <- struct{}{}
	assert.Equal(t, q2, <-got)
	proceed <- struct{}{}

	q3 := cl.Post("alice", "bob", "after the reconnect")
	assert.Equal(t, q3, <-got, "no repeat of q1 or q2")
	proceed <- struct{}{}
	require.Eventually(t, func() bool {
		return len(cl.Queued("bob")) == 0 && len(requestsOf(cl, c, wire.OpListen)) == 2
	}, 5*time.Second, 5*time.Millisecond, "every message acked and subscribed again")
	q4 := cl.Post("alice", "bob", "on the new subscription")
	assert.Equal(t, q4, <-got)
	proceed <- struct{}{}

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	select {
	case m := <-got:
		t.Fatalf("message %d handed to fn twice", m.ID)
	default:
	}
}

func TestClient_ListenErrors(t *testing.T) {
	cl := clienttest.Start(t, 1)
	c, err := client.Dial(t.Context(), testConfig(cl.Addrs()...))
	require.NoError(t, err)
	defer c.Close()
	noop := func(wire.Message) error { return nil }
	require.ErrorIs(t, c.Listen(t.Context(), noop), client.ErrNotLoggedIn)

	cl.AddUser("bob", "pw")
	cl.AddUser("alice", "pw")
	_, err = c.Login(t.Context(), "bob", "pw")
	require.NoError(t, err)
	m := cl.Post("alice", "bob", "refused")

	// fn's error ends Listen, and the message stays queued.
	boom := errors.New("boom")
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(t.Context(), func(wire.Message) error {
			close(inside)
			<-release
			return boom
		})
	}()
	<-inside
	require.ErrorIs(t, c.Listen(t.Context(), noop), client.ErrAlreadyListening)
	close(release)
	require.ErrorIs(t, <-done, boom)
	assert.Equal(t, []uint64{m.ID}, cl.Queued("bob"))
}

func TestClient_CloseStopsEverything(t *testing.T) {
	cl := clienttest.Start(t, 3)
	c := dialAs(t, cl, "bob")
	listening := make(chan error, 1)
	go func() { listening <- c.Listen(context.Background(), func(wire.Message) error { return nil }) }()
	require.Eventually(t, func() bool { return len(requestsOf(cl, c, wire.OpListen)) == 1 }, 5*time.Second, time.Millisecond)

	cl.Inject(clienttest.Fault{Op: wire.OpHistory, Mode: clienttest.Swallow, Count: 1})
	pending := make(chan error, 1)
	go func() {
		_, _, err := c.History(context.Background(), "", 0, 0)
		pending <- err
	}()
	require.Eventually(t, func() bool { return len(requestsOf(cl, c, wire.OpHistory)) == 1 }, 5*time.Second, time.Millisecond)

	st, err := c.Status(t.Context()) // its connections are the client's too
	require.NoError(t, err)
	require.Len(t, st, 3)

	require.NoError(t, c.Close())
	require.ErrorIs(t, <-listening, client.ErrClosed)
	require.ErrorIs(t, <-pending, client.ErrClosed)
	require.NoError(t, c.Close(), "Close is idempotent")

	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	assert.NotContains(t, stacks, "chat/client.(*conn).readLoop")
	assert.NotContains(t, stacks, "chat/client.(*Client)")

	_, err = c.Send(t.Context(), "bob", "x")
	require.ErrorIs(t, err, client.ErrClosed)
	_, err = c.Status(t.Context())
	require.ErrorIs(t, err, client.ErrClosed)
}

func TestClient_LoginLostAfterReconnect(t *testing.T) {
	cl := clienttest.Start(t, 1)
	c := dialAs(t, cl, "alice")
	cl.AddUser("bob", "pw")
	// The connection breaks while another session deletes the account.
	cl.Cut(0)

	otherAlice, err := client.Dial(t.Context(), testConfig(cl.Addrs()...))
	require.NoError(t, err)
	defer otherAlice.Close()
	_, err = otherAlice.Login(t.Context(), "alice", "pw-alice")
	require.NoError(t, err)
	_, err = otherAlice.DeleteAccount(t.Context())
	require.NoError(t, err)

	_, err = c.Send(t.Context(), "bob", "x")
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, wire.CodeUnknownUser, e.Code)
	assert.Contains(t, err.Error(), `log in again as "alice"`)
	assert.Empty(t, c.User(), "credentials forgotten")

	_, err = c.Send(t.Context(), "bob", "x")
	require.ErrorAs(t, err, &e)
	assert.Equal(t, wire.CodeNotLoggedIn, e.Code, "later requests go out logged out")
}

func TestClient_ListenKeepAliveDetectsSilentServer(t *testing.T) {
	cl := clienttest.Start(t, 1)
	cl.AddUser("bob", "pw")
	cfg := testConfig(cl.Addrs()...)
	cfg.KeepAlive = 10 * time.Millisecond
	cfg.RequestTimeout = 100 * time.Millisecond
	c, err := client.Dial(t.Context(), cfg)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Login(t.Context(), "bob", "pw")
	require.NoError(t, err)

	// The first keep-alive ping gets no answer: the connection is
	// presumed dead, and Listen subscribes again on a new one.
	cl.Inject(clienttest.Fault{Op: wire.OpPing, Mode: clienttest.Swallow, Count: 1})
	got := make(chan wire.Message, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(ctx, func(m wire.Message) error { got <- m; return nil })
	}()
	require.Eventually(t, func() bool { return len(requestsOf(cl, c, wire.OpListen)) == 2 }, 5*time.Second, time.Millisecond)
	m := cl.Post("bob", "bob", "still here")
	assert.Equal(t, m, <-got)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Len(t, requestsOf(cl, c, wire.OpLogin), 2, "logged in again")
}

func TestClient_ListenPersistsThroughOutages(t *testing.T) {
	cl := clienttest.Start(t, 3)
	cfg := testConfig(cl.Addrs()...)
	cfg.FailoverTimeout = 200 * time.Millisecond // outages below outlast it
	c, err := client.Dial(t.Context(), cfg)
	require.NoError(t, err)
	defer c.Close()
	cl.AddUser("bob", "pw")
	cl.AddUser("alice", "pw")
	_, err = c.Login(t.Context(), "bob", "pw")
	require.NoError(t, err)

	type event struct {
		outage  *client.UnavailableError
		primary string
	}
	events := make(chan event, 10)
	got := make(chan wire.Message, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.ListenWith(ctx, client.ListenConfig{
			Persist:     true,
			OutageAfter: 300 * time.Millisecond,
			OnOutage:    func(why *client.UnavailableError) { events <- event{outage: why} },
			OnRecover:   func(primary string, down time.Duration) { events <- event{primary: primary} },
		}, func(m wire.Message) error { got <- m; return nil })
	}()
	m := cl.Post("alice", "bob", "before")
	assert.Equal(t, m, <-got)

	// No primary, the replicas up and saying why.
	cl.SetWaiting("restarted; waiting to hear from replica 2")
	cl.SetPrimary(-1)
	ev := <-events
	require.NotNil(t, ev.outage)
	assert.Contains(t, ev.outage.Error(), "replicas 0, 1, 2: restarted; waiting to hear from replica 2")
	time.Sleep(4 * cfg.FailoverTimeout)
	queued := cl.Post("alice", "bob", "queued during the outage")
	cl.SetPrimary(1)
	ev = <-events
	assert.Equal(t, cl.Addr(1), ev.primary, "back")
	assert.Equal(t, queued, <-got, "queued messages first")
	live := cl.Post("alice", "bob", "after")
	assert.Equal(t, live, <-got)

	// Every replica down, then back.
	for i := range 3 {
		cl.Stop(i)
	}
	ev = <-events
	require.NotNil(t, ev.outage)
	assert.Equal(t, "replicas 0, 1, 2: down (connection refused)", ev.outage.Error())
	time.Sleep(4 * cfg.FailoverTimeout)
	for i := range 3 {
		cl.Restart(t, i)
	}
	ev = <-events
	assert.Equal(t, cl.Addr(1), ev.primary)
	live = cl.Post("alice", "bob", "after the restart")
	assert.Equal(t, live, <-got)

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	select {
	case ev := <-events:
		t.Fatalf("one line per outage and per recovery, got another: %+v", ev)
	case m := <-got:
		t.Fatalf("message %d twice", m.ID)
	default:
	}

	// Without Persist, Listen gives up at the failover timeout, saying why.
	cl.SetPrimary(-1)
	err = c.Listen(t.Context(), func(wire.Message) error { return nil })
	require.ErrorIs(t, err, client.ErrFailoverTimeout)
	var ue *client.UnavailableError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, ue.Error(), "waiting to hear from replica 2")
}
