package replica

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

// FuzzDecodeMessage feeds arbitrary bytes to the peer message decoder: it
// must never panic or allocate without bound; whatever it accepts, msgpack's
// reflection (the codec it replaced) reads as the same message; and that
// message must encode and decode again to the same message.
func FuzzDecodeMessage(f *testing.F) {
	seeds := []Message{
		{Type: MsgHeartbeat, From: 1, To: 2, Epoch: 3, Commit: 7},
		{Type: MsgAppend, From: 0, To: 1, Epoch: 2, Prev: 4, PrevEpoch: 2, Records: []eventlog.Record{
			{Offset: 5, Epoch: 2, Type: "chat.send", ClientID: "c", Seq: 9, Time: 1, Data: []byte{1, 2}},
		}},
		{Type: MsgVote, From: 2, To: 0, Epoch: 5, LastOffset: 10, LastEpoch: 4, ISR: []ISRMember{{ID: 0, Incarnation: 1}}},
	}
	for _, m := range seeds {
		b, err := EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // an array header claiming 4G elements
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if !hasDuplicateKeys(b) { // reflection merged a repeated slice into the first
			var s shadowMessage
			if err := msgpack.Unmarshal(b, &s); err != nil {
				t.Fatalf("reflection rejects what the codec accepts: %v", err)
			}
			if want := fromShadowMessage(s); !reflect.DeepEqual(want, m) {
				t.Fatalf("codec read %v, reflection %v", m, want)
			}
		}
		again, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := DecodeMessage(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		b2, _ := EncodeMessage(m2)
		if string(b2) != string(again) {
			t.Fatalf("not stable across a round trip")
		}
	})
}

// hasDuplicateKeys reports whether the map b encodes repeats a key.
func hasDuplicateKeys(b []byte) bool {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeMapLen()
	if err != nil {
		return false
	}
	seen := map[string]bool{}
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			return false
		}
		if seen[k] {
			return true
		}
		seen[k] = true
		if d.Skip() != nil {
			return false
		}
	}
	return false
}
