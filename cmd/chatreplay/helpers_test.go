package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// logBuilder writes a replica's event log the way the server does: chat
// commands are decided against a state (chat.Decide), encoded
// (chat.EncodeEvent), appended and applied. Everything non-deterministic
// (time, message ids, password salts) comes from counters and a seeded
// source, so two builders given the same calls write identical logs.
type logBuilder struct {
	t   *testing.T
	log *eventlog.BadgerLog
	dir string
	// st is the state the builder decides against; it applies every
	// record, so its digest at each offset is what chatreplay must print.
	st      *chat.State
	env     chat.Env
	now     int64
	msgID   uint64
	seqs    map[string]uint64
	digests map[eventlog.Offset]string
}

func newLogBuilder(t *testing.T, dir string) *logBuilder {
	t.Helper()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	b := &logBuilder{t: t, log: l, dir: dir, st: chat.NewState(chat.NewMemStore()), now: 1_700_000_000_000_000_000,
		seqs: make(map[string]uint64), digests: make(map[eventlog.Offset]string)}
	b.env = chat.Env{
		NewMessageID: func() uint64 { b.msgID++; return 100 + b.msgID },
		Rand:         rand.NewChaCha8([32]byte{7}),
		Argon:        chat.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1},
	}
	return b
}

// close closes the log so that chatreplay may open it.
func (b *logBuilder) close() {
	require.NoError(b.t, b.log.Close())
}

// append writes rec at the next offset and applies it.
func (b *logBuilder) append(rec eventlog.Record) eventlog.Record {
	b.t.Helper()
	rec.Offset = b.log.Last() + 1
	if rec.Epoch == 0 {
		rec.Epoch = 1
	}
	b.now += 1_000_000_123
	if rec.Time == 0 && rec.Type != "replica.epoch" {
		rec.Time = b.now
	}
	require.NoError(b.t, b.log.Append([]eventlog.Record{rec}))
	require.NoError(b.t, b.st.Apply([]eventlog.Record{rec}))
	d, err := b.st.Digest()
	require.NoError(b.t, err)
	b.digests[rec.Offset] = fmt.Sprintf("%x", d)
	return rec
}

// epoch appends a replica.epoch record like the one a new primary writes.
func (b *logBuilder) epoch(e eventlog.Epoch) {
	data, err := msgpack.Marshal(&struct {
		Epoch   eventlog.Epoch `msgpack:"epoch"`
		Primary uint32         `msgpack:"primary"`
	}{e, 0})
	require.NoError(b.t, err)
	b.append(eventlog.Record{Type: "replica.epoch", Epoch: e, Data: data})
}

// do decides cmd as client and appends its event with the client's next
// seq.
func (b *logBuilder) do(client string, cmd chat.Command) eventlog.Record {
	b.t.Helper()
	b.env.Now = b.now + 1_000_000_123
	evs, err := chat.Decide(b.st, b.env, cmd)
	require.NoError(b.t, err)
	require.Len(b.t, evs, 1)
	return b.event(client, evs[0])
}

// event appends ev as client's next request, without deciding it.
func (b *logBuilder) event(client string, ev chat.Event) eventlog.Record {
	b.t.Helper()
	typ, data, err := chat.EncodeEvent(ev)
	require.NoError(b.t, err)
	b.seqs[client]++
	return b.append(eventlog.Record{Type: typ, ClientID: client, Seq: b.seqs[client], Data: data})
}

func (b *logBuilder) uid(name string) uint64 {
	b.t.Helper()
	u, ok, err := b.st.User(name)
	require.NoError(b.t, err)
	require.True(b.t, ok, "user %s", name)
	return u.ID
}

// buildFixture writes the log most tests read:
//
//	1 replica.epoch
//	2 register ann (uid 1)            7 duplicate of 4 (skipped by dedup)
//	3 register bob (uid 2)            8 delete account ann (uid 1)
//	4 send ann->bob (id 101)          9 register ann again (uid 3)
//	5 send bob->ann (id 102)         10 send bob->ann (uid 3, id 103)
//	6 bob reads 101                  11 register bob again: user_exists
//	                                 12 replica.epoch 2
func buildFixture(t *testing.T, dir string) *logBuilder {
	b := newLogBuilder(t, dir)
	b.epoch(1)
	b.do("c-ann", chat.Register{Name: "ann", Password: "pw-ann"})
	b.do("c-bob", chat.Register{Name: "bob", Password: "pw-bob"})
	send := b.do("c-ann", chat.Send{FromUID: b.uid("ann"), To: "bob", Body: "hi bob"})
	b.do("c-bob", chat.Send{FromUID: b.uid("bob"), To: "ann", Body: `hi "ann"`})
	b.do("c-bob", chat.Deliver{UID: b.uid("bob"), MessageIDs: []uint64{101}})
	send.Offset, send.Time = 0, 0 // a retry of the same request, re-proposed
	b.append(send)
	b.do("c-ann", chat.DeleteAccount{UID: b.uid("ann")})
	b.do("c-ann2", chat.Register{Name: "ann", Password: "pw-ann2"})
	b.do("c-bob", chat.Send{FromUID: b.uid("bob"), To: "ann", Body: "again"})
	// Decided before another register of bob applied: rejected at apply.
	b.event("c-late", &chat.RegisterEvent{Name: "bob", PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"})
	b.epoch(2)
	return b
}

// replayOut runs chatreplay with args and returns its outputs.
func replayOut(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// offsetsOf returns the leading number of each output line.
func offsetsOf(t *testing.T, out string) []int {
	t.Helper()
	var offs []int
	for line := range strings.Lines(out) {
		var off int
		_, err := fmt.Sscanf(line, "%d", &off)
		require.NoError(t, err, "line %q", line)
		offs = append(offs, off)
	}
	return offs
}
