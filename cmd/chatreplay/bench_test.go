package main

import (
	"fmt"
	"io"
	"testing"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// sendLog writes a log of 100 registers followed by sends between them, n
// records in all, appended in batches (one sync each), and returns its
// directory and the state that applying it gives.
func sendLog(b testing.TB, n int) (string, *chat.State) {
	b.Helper()
	dir := b.TempDir()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	st := chat.NewState(chat.NewMemStore())
	const users = 100
	var batch []eventlog.Record
	for off := eventlog.Offset(1); off <= eventlog.Offset(n); off++ {
		var ev chat.Event = &chat.SendEvent{MessageID: uint64(off), FromUID: 1 + uint64(off)%users,
			ToUID: 1 + uint64(off*7)%users, Body: "a typical chat message of about sixty bytes, give or take"}
		if off <= users {
			ev = &chat.RegisterEvent{Name: fmt.Sprintf("user%d", off), PasswordHash: "$argon2id$x"}
		}
		typ, data, err := chat.EncodeEvent(ev)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, eventlog.Record{Offset: off, Epoch: 1, Type: typ,
			ClientID: fmt.Sprintf("client%d", off%50), Seq: uint64(off), Time: int64(off) * 1e6, Data: data})
		if len(batch) == 1000 || off == eventlog.Offset(n) {
			if err := l.Append(batch); err != nil {
				b.Fatal(err)
			}
			if err := st.Apply(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return dir, st
}

// BenchmarkReplay measures a whole run of chatreplay over a log of 20,000
// events: printing every event (each folded alone, to report its names and
// result) and folding for --state (batched), with the scratch state in a
// temporary Badger directory or in memory.
func BenchmarkReplay(b *testing.B) {
	const events = 20000
	dir, _ := sendLog(b, events)
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"json/badger", []string{"--json"}},
		{"json/mem", []string{"--json", "--mem"}},
		{"state/badger", []string{"--state"}},
		{"state/mem", []string{"--state", "--mem"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			args := append([]string{"--data", dir}, bc.args...)
			for b.Loop() {
				if err := run(b.Context(), args, io.Discard, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
