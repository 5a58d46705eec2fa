package replica

import (
	"testing"

	"github.com/replichat/replichat/eventlog"
)

// FuzzDecodeMessage feeds arbitrary bytes to the peer message decoder: it
// must never panic or allocate without bound, and whatever it accepts must
// encode and decode again to the same message.
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
