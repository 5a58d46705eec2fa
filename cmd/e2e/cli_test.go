package e2e

// Every command of CONTRACT.md's chat section, through the real chat
// binary against a real chatd, with --json: the objects each prints, and
// an error object plus a non-zero exit for the failures a user meets.

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCLI_Commands(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	const annPW, bobPW = "ann-secret", "bob-secret"

	// register; a second account of the same name is refused.
	assert.Equal(t, []userJSON{{"ann"}}, mustChat[userJSON](t, c, "ann", annPW, "register"))
	assert.Equal(t, []userJSON{{"bob"}}, mustChat[userJSON](t, c, "bob", bobPW, "register"))
	assert.Equal(t, "user_exists", chatError(t, c, "ann", "other", "register"))

	// Wrong password and unknown recipient.
	assert.Equal(t, "wrong_password", chatError(t, c, "ann", "wrong", "users"))
	assert.Equal(t, "unknown_user", chatError(t, c, "ann", annPW, "send", "zed", "hello?"))

	// listen, in the background: online, and receives a send at once.
	listen := startBackground(t, []string{"CHAT_PASSWORD=" + bobPW},
		bins.Chat, "--servers", c.Servers(), "--user", "bob", "--json", "listen")
	waitUntil(t, "bob online while listening", func() bool {
		return slices.Contains(mustChat[userOnlineJSON](t, c, "ann", annPW, "users"), userOnlineJSON{"bob", true})
	})

	sent := mustChat[messageJSON](t, c, "ann", annPW, "send", "bob", "hello bob")
	require.Len(t, sent, 1)
	hello := sent[0]
	assert.NotZero(t, hello.ID)
	assert.Equal(t, "ann", hello.From)
	assert.Equal(t, "bob", hello.To)
	assert.Equal(t, "hello bob", hello.Body)
	_, err := time.Parse(time.RFC3339, hello.SentAt)
	assert.NoError(t, err, "sent_at is RFC 3339")

	var pushed messageJSON
	require.NoError(t, json.Unmarshal([]byte(listen.next(t)), &pushed))
	assert.Equal(t, hello, pushed, "listen prints the message as sent")
	assert.Equal(t, 0, listen.signal(t, os.Interrupt), "listen exits cleanly when interrupted; stderr: %s", listen.stderr.String())

	// users [PATTERN] with online flags.
	waitUntil(t, "bob offline once listen stopped", func() bool {
		return slices.Contains(mustChat[userOnlineJSON](t, c, "ann", annPW, "users"), userOnlineJSON{"bob", false})
	})
	assert.Equal(t, []userOnlineJSON{{"ann", false}, {"bob", false}}, mustChat[userOnlineJSON](t, c, "ann", annPW, "users"))
	assert.Equal(t, []userOnlineJSON{{"bob", false}}, mustChat[userOnlineJSON](t, c, "ann", annPW, "users", "b*"))
	assert.Empty(t, mustChat[userOnlineJSON](t, c, "ann", annPW, "users", "z?"))

	// Messages to an offline user are queued; read --limit delivers the
	// oldest first; listen already delivered the first one.
	var queued []messageJSON
	for _, body := range []string{"two", "three", "four"} {
		m := mustChat[messageJSON](t, c, "ann", annPW, "send", "bob", body)
		require.Len(t, m, 1)
		queued = append(queued, m[0])
	}
	assert.Equal(t, queued[:2], mustChat[messageJSON](t, c, "bob", bobPW, "read", "--limit", "2"))
	assert.Equal(t, queued[2:], mustChat[messageJSON](t, c, "bob", bobPW, "read"))
	assert.Empty(t, mustChat[messageJSON](t, c, "bob", bobPW, "read"), "nothing left to deliver")

	// history, sent and received, oldest first.
	reply := mustChat[messageJSON](t, c, "bob", bobPW, "send", "ann", "hi ann")
	require.Len(t, reply, 1)
	all := append([]messageJSON{hello}, queued...)
	all = append(all, reply[0])
	assert.Equal(t, all, mustChat[messageJSON](t, c, "bob", bobPW, "history"))
	assert.Equal(t, all[:2], mustChat[messageJSON](t, c, "bob", bobPW, "history", "--with", "ann", "--limit", "2"))
	assert.Equal(t, all, mustChat[messageJSON](t, c, "ann", annPW, "history", "--with", "bob"))
	assert.Equal(t, "unknown_user", chatError(t, c, "bob", bobPW, "history", "--with", "zed"))

	// delete-messages removes only the caller's view.
	assert.Equal(t, []deletedJSON{{[]uint64{hello.ID}}}, mustChat[deletedJSON](t, c, "bob", bobPW, "delete-messages", strconv.FormatUint(hello.ID, 10)))
	assert.Equal(t, all[1:], mustChat[messageJSON](t, c, "bob", bobPW, "history"))
	assert.Equal(t, all, mustChat[messageJSON](t, c, "ann", annPW, "history"), "the sender keeps its view")
	assert.NotEqual(t, "", chatError(t, c, "ann", annPW, "delete-messages", "999999999"))

	// status: one replica, the primary, in sync.
	st := mustChat[statusJSON](t, c, "ann", annPW, "status")
	require.Len(t, st, 1)
	assert.Equal(t, "primary", st[0].Role)
	assert.Equal(t, c.Addrs()[0], st[0].Addr)
	assert.True(t, st[0].InSync)
	assert.NotZero(t, st[0].Epoch)
	assert.NotZero(t, st[0].Commit)
	assert.GreaterOrEqual(t, st[0].LogEnd, st[0].Commit)

	// delete-account: the account and its login are gone.
	assert.Equal(t, []accountDeletedJSON{{"ann", true}}, mustChat[accountDeletedJSON](t, c, "ann", annPW, "delete-account"))
	assert.Equal(t, []userOnlineJSON{{"bob", false}}, mustChat[userOnlineJSON](t, c, "bob", bobPW, "users"))
	assert.NotEqual(t, "", chatError(t, c, "ann", annPW, "users"))
	assert.Equal(t, "unknown_user", chatError(t, c, "bob", bobPW, "send", "ann", "are you there?"))
}
