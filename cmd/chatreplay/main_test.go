// Tests of chatreplay's run: every flag, both output formats, determinism
// across copies of a log, the state at intermediate offsets, and each way
// the data directory can be unreadable. Logs are written by logBuilder the
// way the server writes them (helpers_test.go).
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

const wantHuman = `1  1  -  replica.epoch  epoch=1  primary=0
2  1  2023-11-14T22:13:22.000000246Z  chat.register  name=ann  uid=1  password_hash=<redacted>  result=ok  client=c-ann  seq=1
3  1  2023-11-14T22:13:23.000000369Z  chat.register  name=bob  uid=2  password_hash=<redacted>  result=ok  client=c-bob  seq=1
4  1  2023-11-14T22:13:24.000000492Z  chat.send  id=101  from_uid=1  from=ann  to_uid=2  to=bob  body="hi bob"  result=ok  client=c-ann  seq=2
5  1  2023-11-14T22:13:25.000000615Z  chat.send  id=102  from_uid=2  from=bob  to_uid=1  to=ann  body="hi \"ann\""  result=ok  client=c-bob  seq=2
6  1  2023-11-14T22:13:26.000000738Z  chat.deliver  uid=2  user=bob  ids=[101]  result=ok  client=c-bob  seq=3
7  1  2023-11-14T22:13:27.000000861Z  chat.send  id=101  from_uid=1  from=ann  to_uid=2  to=bob  body="hi bob"  result=duplicate  client=c-ann  seq=2
8  1  2023-11-14T22:13:28.000000984Z  chat.delete_account  uid=1  user=ann  result=ok  client=c-ann  seq=3
9  1  2023-11-14T22:13:29.000001107Z  chat.register  name=ann  uid=3  password_hash=<redacted>  result=ok  client=c-ann2  seq=1
10  1  2023-11-14T22:13:30.00000123Z  chat.send  id=103  from_uid=2  from=bob  to_uid=3  to=ann  body=again  result=ok  client=c-bob  seq=4
11  1  2023-11-14T22:13:31.000001353Z  chat.register  name=bob  password_hash=<redacted>  result=user_exists  error="chat: user already exists: \"bob\""  client=c-late  seq=1
12  2  -  replica.epoch  epoch=2  primary=0
`

const wantJSON = `{"offset":1,"epoch":1,"type":"replica.epoch","time":null,"data":{"epoch":1,"primary":0}}
{"offset":2,"epoch":1,"type":"chat.register","time":"2023-11-14T22:13:22.000000246Z","client":"c-ann","seq":1,"name":"ann","uid":1,"password_hash":"<redacted>","result":"ok"}
{"offset":3,"epoch":1,"type":"chat.register","time":"2023-11-14T22:13:23.000000369Z","client":"c-bob","seq":1,"name":"bob","uid":2,"password_hash":"<redacted>","result":"ok"}
{"offset":4,"epoch":1,"type":"chat.send","time":"2023-11-14T22:13:24.000000492Z","client":"c-ann","seq":2,"id":101,"from_uid":1,"from":"ann","to_uid":2,"to":"bob","body":"hi bob","result":"ok"}
{"offset":5,"epoch":1,"type":"chat.send","time":"2023-11-14T22:13:25.000000615Z","client":"c-bob","seq":2,"id":102,"from_uid":2,"from":"bob","to_uid":1,"to":"ann","body":"hi \"ann\"","result":"ok"}
{"offset":6,"epoch":1,"type":"chat.deliver","time":"2023-11-14T22:13:26.000000738Z","client":"c-bob","seq":3,"uid":2,"user":"bob","ids":[101],"result":"ok"}
{"offset":7,"epoch":1,"type":"chat.send","time":"2023-11-14T22:13:27.000000861Z","client":"c-ann","seq":2,"id":101,"from_uid":1,"from":"ann","to_uid":2,"to":"bob","body":"hi bob","result":"duplicate"}
{"offset":8,"epoch":1,"type":"chat.delete_account","time":"2023-11-14T22:13:28.000000984Z","client":"c-ann","seq":3,"uid":1,"user":"ann","result":"ok"}
{"offset":9,"epoch":1,"type":"chat.register","time":"2023-11-14T22:13:29.000001107Z","client":"c-ann2","seq":1,"name":"ann","uid":3,"password_hash":"<redacted>","result":"ok"}
{"offset":10,"epoch":1,"type":"chat.send","time":"2023-11-14T22:13:30.00000123Z","client":"c-bob","seq":4,"id":103,"from_uid":2,"from":"bob","to_uid":3,"to":"ann","body":"again","result":"ok"}
{"offset":11,"epoch":1,"type":"chat.register","time":"2023-11-14T22:13:31.000001353Z","client":"c-late","seq":1,"name":"bob","password_hash":"<redacted>","result":"user_exists","error":"chat: user already exists: \"bob\""}
{"offset":12,"epoch":2,"type":"replica.epoch","time":null,"data":{"epoch":2,"primary":0}}
`

func fixtureDir(t *testing.T) (string, *logBuilder) {
	t.Helper()
	dir := t.TempDir()
	b := buildFixture(t, dir)
	b.close()
	return dir, b
}

func TestRun_Formats(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"human", nil, wantHuman},
		{"json", []string{"--json"}, wantJSON},
		{"human in memory", []string{"--mem"}, wantHuman},
		{"json in memory", []string{"--json", "--mem"}, wantJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := replayOut(t, append([]string{"--data", dir}, tc.args...)...)
			require.NoError(t, err, errOut)
			assert.Equal(t, tc.want, out)
			assert.Empty(t, errOut)
			assert.NotContains(t, out, "$argon2id", "password hashes must never be printed")
		})
	}
}

func TestRun_JSONLinesParse(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	out, _, err := replayOut(t, "--data", dir, "--json")
	require.NoError(t, err)
	for line := range strings.Lines(out) {
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &obj), line)
		for _, k := range []string{"offset", "epoch", "type", "time"} {
			assert.Contains(t, obj, k, line)
		}
	}
}

func TestRun_Filters(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	for _, tc := range []struct {
		name string
		args []string
		want []int
	}{
		{"range", []string{"--from", "3", "--to", "6"}, []int{3, 4, 5, 6}},
		{"from only", []string{"--from", "11"}, []int{11, 12}},
		{"to only", []string{"--to", "2"}, []int{1, 2}},
		{"to beyond the end", []string{"--from", "12", "--to", "99"}, []int{12}},
		{"from beyond the end", []string{"--from", "13"}, nil},
		{"short type", []string{"--type", "send"}, []int{4, 5, 7, 10}},
		{"full type", []string{"--type", "chat.send"}, []int{4, 5, 7, 10}},
		{"several types", []string{"--type", "register,delete-account"}, []int{2, 3, 8, 9, 11}},
		{"replica type", []string{"--type", "replica.epoch"}, []int{1, 12}},
		{"type and range", []string{"--type", "register", "--from", "5"}, []int{9, 11}},
		// Both accounts named ann (uids 1 and 3), their sends and
		// receipts and deletion; not bob's deliver of a message from ann.
		{"user ann", []string{"--user", "ann"}, []int{2, 4, 5, 7, 8, 9, 10}},
		{"user bob", []string{"--user", "bob"}, []int{3, 4, 5, 6, 7, 10, 11}},
		{"user ann from later", []string{"--user", "ann", "--from", "9"}, []int{9, 10}},
		{"user and type", []string{"--user", "ann", "--type", "send"}, []int{4, 5, 7, 10}},
		{"unknown user", []string{"--user", "zed"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := replayOut(t, append([]string{"--data", dir, "--mem"}, tc.args...)...)
			require.NoError(t, err, errOut)
			assert.Equal(t, tc.want, offsetsOf(t, out))
		})
	}
}

func TestRun_UserDistinguishesAccounts(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	out, _, err := replayOut(t, "--data", dir, "--json", "--user", "ann", "--type", "send")
	require.NoError(t, err)
	var to []string
	for line := range strings.Lines(out) {
		var obj struct {
			ToUID uint64 `json:"to_uid"`
			To    string `json:"to"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &obj))
		to = append(to, fmt.Sprintf("%s/%d", obj.To, obj.ToUID))
	}
	// Message 102 went to the first ann (uid 1), 103 to the second (uid 3).
	assert.Equal(t, []string{"bob/2", "ann/1", "bob/2", "ann/3"}, to)
}

func TestRun_State(t *testing.T) {
	t.Parallel()
	dir, b := fixtureDir(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
		at   eventlog.Offset
	}{
		{"before any account", []string{"--to", "1"}, "", 1},
		{"registered", []string{"--to", "3"}, `{"user":"ann","uid":1,"created":"2023-11-14T22:13:22.000000246Z","queued":0,"delivered":0,"history":0}
{"user":"bob","uid":2,"created":"2023-11-14T22:13:23.000000369Z","queued":0,"delivered":0,"history":0}
`, 3},
		{"after a read", []string{"--to", "6"}, `{"user":"ann","uid":1,"created":"2023-11-14T22:13:22.000000246Z","queued":1,"delivered":0,"history":2}
{"user":"bob","uid":2,"created":"2023-11-14T22:13:23.000000369Z","queued":0,"delivered":1,"history":2}
`, 6},
		{"name re-used", []string{"--to", "10"}, `{"user":"ann","uid":3,"created":"2023-11-14T22:13:29.000001107Z","queued":1,"delivered":0,"history":1}
{"user":"bob","uid":2,"created":"2023-11-14T22:13:23.000000369Z","queued":0,"delivered":1,"history":3}
`, 10},
		{"end, one user", []string{"--user", "bob"}, `{"user":"bob","uid":2,"created":"2023-11-14T22:13:23.000000369Z","queued":0,"delivered":1,"history":3}
`, 12},
		{"end, from is ignored", []string{"--from", "5"}, `{"user":"ann","uid":3,"created":"2023-11-14T22:13:29.000001107Z","queued":1,"delivered":0,"history":1}
{"user":"bob","uid":2,"created":"2023-11-14T22:13:23.000000369Z","queued":0,"delivered":1,"history":3}
`, 12},
	} {
		for _, store := range []string{"badger", "mem"} {
			t.Run(tc.name+"/"+store, func(t *testing.T) {
				args := append([]string{"--data", dir, "--state", "--json"}, tc.args...)
				if store == "mem" {
					args = append(args, "--mem")
				}
				out, errOut, err := replayOut(t, args...)
				require.NoError(t, err, errOut)
				accounts := strings.Count(tc.want, "\n")
				if tc.at >= 9 { // "ann" and "bob", whatever --user shows
					accounts = 2
				}
				summary := fmt.Sprintf(`{"applied":%d,"accounts":%d,"digest":%q}`+"\n", tc.at, accounts, b.digests[tc.at])
				assert.Equal(t, tc.want+summary, out)
			})
		}
	}
}

func TestRun_StateHuman(t *testing.T) {
	t.Parallel()
	dir, b := fixtureDir(t)
	out, _, err := replayOut(t, "--data", dir, "--state", "--to", "6")
	require.NoError(t, err)
	assert.Equal(t, "ann  uid=1  created=2023-11-14T22:13:22.000000246Z  queued=1  delivered=0  history=2\n"+
		"bob  uid=2  created=2023-11-14T22:13:23.000000369Z  queued=0  delivered=1  history=2\n"+
		"applied=6  accounts=2  digest="+b.digests[6]+"\n", out)
}

// Two replicas holding the same records print the same bytes, whatever
// else differs between their directories.
func TestRun_Deterministic(t *testing.T) {
	t.Parallel()
	dirA, _ := fixtureDir(t)
	dirB, _ := fixtureDir(t)
	for _, args := range [][]string{nil, {"--json"}, {"--state"}, {"--state", "--json", "--to", "7"}, {"--user", "ann"}} {
		outA, _, err := replayOut(t, append([]string{"--data", dirA}, args...)...)
		require.NoError(t, err)
		outB, _, err := replayOut(t, append([]string{"--data", dirB, "--mem"}, args...)...)
		require.NoError(t, err)
		assert.NotEmpty(t, outA)
		assert.Equal(t, outA, outB, "args %v", args)
	}
}

func TestRun_EmptyLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newLogBuilder(t, dir).close()
	out, _, err := replayOut(t, "--data", dir)
	require.NoError(t, err)
	assert.Empty(t, out)
	out, _, err = replayOut(t, "--data", dir, "--state", "--json")
	require.NoError(t, err)
	var summary struct {
		Applied, Accounts int
		Digest            string
	}
	require.NoError(t, json.Unmarshal([]byte(out), &summary))
	assert.Zero(t, summary.Applied)
	assert.Zero(t, summary.Accounts)
	assert.Len(t, summary.Digest, 64)
}

func TestRun_GenericPayloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := newLogBuilder(t, dir)
	b.append(eventlog.Record{Type: "replica.isr", Data: []byte{0x81, 0xa7, 'm', 'e', 'm', 'b', 'e', 'r', 's', 0x91, 0x82, 0xa2, 'i', 'd', 0x00, 0xa3, 'i', 'n', 'c', 0x01}})
	b.append(eventlog.Record{Type: "replica.other", Data: []byte{0xc1, 0xff}}) // 0xc1 is never msgpack
	b.append(eventlog.Record{Type: "replica.intkeys", Data: []byte{0x82, 0x02, 0xa1, 'b', 0x01, 0xa1, 'a'}})
	b.close()
	out, _, err := replayOut(t, "--data", dir, "--json")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	assert.Contains(t, lines[0], `"type":"replica.isr","time":"2023-11-14T22:13:21.000000123Z","data":{"members":[{"id":0,"inc":1}]}}`)
	assert.Contains(t, lines[1], `"data_base64":"wf8="}`)
	assert.Contains(t, lines[2], `"data":{"1":"a","2":"b"}}`, "keys sorted")
	out, _, err = replayOut(t, "--data", dir)
	require.NoError(t, err)
	assert.Contains(t, out, `replica.isr  members=[{"id":0,"inc":1}]`)
	assert.Contains(t, out, `replica.other  data_base64="wf8="`)
}

// A record that fails its checksum: everything before it is printed, then
// the error names its offset.
func TestRun_CorruptRecord(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	key := binary.BigEndian.AppendUint64([]byte("l/"), 5) // eventlog/badgerkeys.go
	require.NoError(t, l.DB().Update(func(txn *badger.Txn) error { return txn.Set(key, []byte("\x00\x00\x00\x01garbage")) }))
	require.NoError(t, l.Close())

	for _, args := range [][]string{{"--json"}, {"--state"}, {"--from", "3", "--type", "send"}} {
		out, errOut, err := replayOut(t, append([]string{"--data", dir}, args...)...)
		var ce *eventlog.CorruptError
		require.ErrorAs(t, err, &ce, "args %v", args)
		assert.Equal(t, eventlog.Offset(5), ce.Offset)
		assert.Equal(t, 1, exitCode(err))
		assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
		assert.Contains(t, errOut, "corrupt record at offset 5")
		switch args[0] {
		case "--json":
			assert.Equal(t, []int{1, 2, 3, 4}, jsonOffsets(t, out))
		case "--state":
			assert.Empty(t, out, "no state from a log that cannot be read to its end")
		default:
			assert.Equal(t, []int{4}, offsetsOf(t, out))
		}
	}
}

func jsonOffsets(t *testing.T, out string) []int {
	t.Helper()
	var offs []int
	for line := range strings.Lines(out) {
		var obj struct{ Offset int }
		require.NoError(t, json.Unmarshal([]byte(line), &obj))
		offs = append(offs, obj.Offset)
	}
	return offs
}

func TestRun_Compacted(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	require.NoError(t, l.Compact(9))
	require.NoError(t, l.Close())

	out, errOut, err := replayOut(t, "--data", dir)
	require.NoError(t, err)
	assert.Contains(t, errOut, "is compacted: it starts at offset 10 and no snapshot of the chat state is kept beside it")
	assert.Equal(t, "10  1  2023-11-14T22:13:30.00000123Z  chat.send  id=103  from_uid=2  to_uid=3  body=again  client=c-bob  seq=4\n"+
		"11  1  2023-11-14T22:13:31.000001353Z  chat.register  name=bob  password_hash=<redacted>  client=c-late  seq=1\n"+
		"12  2  -  replica.epoch  epoch=2  primary=0\n", out)
	for _, flagArg := range []string{"--state", "--user=bob"} {
		_, errOut, err = replayOut(t, "--data", dir, flagArg)
		require.Error(t, err, flagArg)
		assert.Equal(t, 1, exitCode(err))
		assert.Contains(t, errOut, "--state and --user need a snapshot, or the log from offset 1")
	}
}

func TestRun_Unreadable(t *testing.T) {
	t.Parallel()
	locked, _ := fixtureDir(t)
	held, err := eventlog.OpenBadger(locked, eventlog.BadgerOptions{}) // a running replica
	require.NoError(t, err)
	t.Cleanup(func() { held.Close() })
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))

	for _, tc := range []struct {
		name, dir, want string
	}{
		{"locked by a running replica", locked, "in use by a running replica"},
		{"missing", filepath.Join(t.TempDir(), "nope"), "no data directory at"},
		{"empty", t.TempDir(), "cannot read the data directory"},
		{"a file", file, "cannot read the data directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := replayOut(t, "--data", tc.dir)
			require.Error(t, err)
			assert.Equal(t, 1, exitCode(err))
			assert.Empty(t, out)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			assert.True(t, strings.HasPrefix(errOut, "chatreplay: "), errOut)
			assert.Contains(t, errOut, tc.want)
			assert.NotContains(t, errOut, "goroutine")
		})
	}
}

func TestRun_Usage(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no data", nil, "--data is required"},
		{"from zero", []string{"--data", dir, "--from", "0"}, "offsets start at 1"},
		{"from after to", []string{"--data", dir, "--from", "5", "--to", "3"}, "--from 5 is after --to 3"},
		{"unknown type", []string{"--data", dir, "--type", "sned"}, `unknown type "sned"`},
		{"argument", []string{"--data", dir, "extra"}, `unexpected argument "extra"`},
		{"bad flag", []string{"--data", dir, "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad number", []string{"--data", dir, "--to", "x"}, `invalid value "x" for flag -to`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := replayOut(t, tc.args...)
			require.ErrorIs(t, err, errUsage)
			assert.Equal(t, 2, exitCode(err))
			assert.Empty(t, out)
			assert.Contains(t, errOut, tc.want)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line, not the usage: %q", errOut)
			assert.True(t, strings.HasPrefix(errOut, "chatreplay: "), errOut)
			assert.Contains(t, errOut, "(see chatreplay --help)")
		})
	}
	out, errOut, err := replayOut(t, "--help")
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, 0, exitCode(err))
	assert.Empty(t, errOut)
	assert.Contains(t, out, "usage: chatreplay", "asked for: on stdout")

	out, errOut, err = replayOut(t, "--version")
	assert.Equal(t, 0, exitCode(err))
	assert.Empty(t, errOut)
	assert.Regexp(t, `^chatreplay \S+ \S+ rev \S+.* go1\.\d+\S* \S+/\S+\n$`, out)
}

func TestRun_StateBeyondTheLog(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	out, errOut, err := replayOut(t, "--data", dir, "--state", "--to", "120")
	assert.Equal(t, 1, exitCode(err))
	assert.Empty(t, out, "no state passed off as the one at 120")
	assert.Equal(t, "chatreplay: --state --to 120: the log in "+dir+" ends at offset 12\n", errOut)

	out, _, err = replayOut(t, "--data", dir, "--state", "--to", "12")
	require.NoError(t, err)
	assert.Contains(t, out, "applied=12")
	out, _, err = replayOut(t, "--data", dir, "--to", "120")
	require.NoError(t, err, "printing events up to a later offset prints them all")
	assert.Equal(t, 12, strings.Count(out, "\n"))
}

func TestRun_Canceled(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errOut strings.Builder
	err := run(ctx, []string{"--data", dir}, &out, &errOut)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, out.String())
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	assert.Equal(t, 0, exitCode(nil))
	assert.Equal(t, 0, exitCode(flag.ErrHelp))
	assert.Equal(t, 2, exitCode(fmt.Errorf("x: %w", errUsage)))
	assert.Equal(t, 1, exitCode(errors.New("boom")))
}

// A log longer than one apply batch: the state is the
// same as applying it in one go, and the events stream in order.
func TestRun_LongLog(t *testing.T) {
	t.Parallel()
	const events = 1000
	dir, st := sendLog(t, events)
	digest, err := st.Digest()
	require.NoError(t, err)
	for _, store := range []string{"--mem", "--tmp=" + t.TempDir()} {
		out, errOut, err := replayOut(t, "--data", dir, "--state", "--json", store)
		require.NoError(t, err, errOut)
		assert.True(t, strings.HasSuffix(out, fmt.Sprintf(`{"applied":%d,"accounts":100,"digest":"%x"}`+"\n", events, digest)), store)
		assert.Equal(t, 101, strings.Count(out, "\n"))
	}
	out, _, err := replayOut(t, "--data", dir, "--mem", "--from", "990")
	require.NoError(t, err)
	assert.Equal(t, []int{990, 991, 992, 993, 994, 995, 996, 997, 998, 999, 1000}, offsetsOf(t, out))
	out, _, err = replayOut(t, "--data", dir, "--mem", "--user", "user7", "--type", "register")
	require.NoError(t, err)
	assert.Equal(t, []int{7}, offsetsOf(t, out))
}

func TestWalk(t *testing.T) {
	t.Parallel()
	dir, _ := fixtureDir(t)
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	for _, tc := range []struct {
		name     string
		from, to eventlog.Offset
		maxBytes int
		// minCalls and maxCalls bound the calls of fn (batches).
		minCalls, maxCalls int
	}{
		{"one batch", 1, 12, 1 << 20, 1, 1},
		{"record by record", 1, 12, 1, 12, 12},
		{"small batches", 3, 10, 150, 2, 7},
		{"empty range", 13, 12, 1 << 20, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []eventlog.Offset
			calls := 0
			err := walk(t.Context(), l, tc.from, tc.to, tc.maxBytes, func(recs []eventlog.Record) error {
				calls++
				for _, r := range recs {
					got = append(got, r.Offset)
				}
				return nil
			})
			require.NoError(t, err)
			var want []eventlog.Offset
			for o := tc.from; o <= tc.to; o++ {
				want = append(want, o)
			}
			assert.Equal(t, want, got)
			assert.GreaterOrEqual(t, calls, tc.minCalls)
			assert.LessOrEqual(t, calls, tc.maxCalls)
		})
	}

	key := binary.BigEndian.AppendUint64([]byte("l/"), 9)
	require.NoError(t, l.DB().Update(func(txn *badger.Txn) error { return txn.Set(key, []byte("short")) }))
	var got []eventlog.Offset
	err = walk(t.Context(), l, 2, 12, 200, func(recs []eventlog.Record) error {
		for _, r := range recs {
			got = append(got, r.Offset)
		}
		return nil
	})
	var ce *eventlog.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, eventlog.Offset(9), ce.Offset)
	assert.Equal(t, []eventlog.Offset{2, 3, 4, 5, 6, 7, 8}, got, "every record before the corrupt one")

	boom := errors.New("boom")
	err = walk(t.Context(), l, 1, 5, 1<<20, func([]eventlog.Record) error { return boom })
	assert.ErrorIs(t, err, boom)
}

// TestRun_DataDirLayouts reads the log of a replica's data directory
// (DIR/log, next to DIR/state) and, for compatibility, a bare log directory.
func TestRun_DataDirLayouts(t *testing.T) {
	t.Parallel()
	bare, _ := fixtureDir(t)
	replicaDir := t.TempDir()
	buildFixture(t, filepath.Join(replicaDir, logSubdir)).close()
	// The chat state's database is not a log: chatreplay must not read it.
	require.NoError(t, os.Mkdir(filepath.Join(replicaDir, "state"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(replicaDir, "state", "MANIFEST"), []byte("not a log"), 0o644))

	for _, tc := range []struct{ name, dir string }{
		{"replica data directory", replicaDir},
		{"bare log directory", bare},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := replayOut(t, "--data", tc.dir)
			require.NoError(t, err, errOut)
			assert.Equal(t, wantHuman, out)
			assert.Empty(t, errOut)
		})
	}

	t.Run("replica running", func(t *testing.T) {
		held, err := eventlog.OpenBadger(filepath.Join(replicaDir, logSubdir), eventlog.BadgerOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { held.Close() })
		out, errOut, err := replayOut(t, "--data", replicaDir)
		require.Error(t, err)
		assert.Empty(t, out)
		assert.Contains(t, errOut, replicaDir+" is in use by a running replica")
	})
}
