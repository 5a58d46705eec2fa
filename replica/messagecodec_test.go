package replica

// The hand-written message codec must not change the peer protocol: it
// writes byte for byte what msgpack's reflection wrote for Message, reads
// back what it writes, and reads what reflection read (other field orders,
// unknown keys, compact integers) with reflection's result. The oracle is
// shadowMessage: Message's fields and tags on types without codec methods.

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

type shadowRecord struct {
	Offset   uint64 `msgpack:"offset"`
	Epoch    uint64 `msgpack:"epoch"`
	Type     string `msgpack:"type"`
	ClientID string `msgpack:"client,omitempty"`
	Seq      uint64 `msgpack:"seq,omitempty"`
	Time     int64  `msgpack:"time"`
	Data     []byte `msgpack:"data"`
	OEpoch   uint64 `msgpack:"oepoch,omitempty"`
	OOffset  uint64 `msgpack:"ooffset,omitempty"`
}

type shadowISRMember struct {
	ID          uint32 `msgpack:"id"`
	Incarnation uint64 `msgpack:"inc"`
	Disk        uint64 `msgpack:"disk,omitempty"`
}

type shadowMessage struct {
	Type            uint8             `msgpack:"t"`
	From            uint32            `msgpack:"f"`
	To              uint32            `msgpack:"to"`
	Epoch           uint64            `msgpack:"e"`
	Role            uint8             `msgpack:"r"`
	Primary         uint32            `msgpack:"p"`
	LastOffset      uint64            `msgpack:"lo"`
	LastEpoch       uint64            `msgpack:"le"`
	Commit          uint64            `msgpack:"c,omitempty"`
	Prev            uint64            `msgpack:"pv,omitempty"`
	PrevEpoch       uint64            `msgpack:"pe,omitempty"`
	Records         []shadowRecord    `msgpack:"rs,omitempty"`
	Reject          bool              `msgpack:"x,omitempty"`
	Probe           bool              `msgpack:"pr,omitempty"`
	Fresher         bool              `msgpack:"fr,omitempty"`
	ISR             []shadowISRMember `msgpack:"i,omitempty"`
	ISREpoch        uint64            `msgpack:"ie,omitempty"`
	ISRAt           uint64            `msgpack:"ia,omitempty"`
	Recovering      bool              `msgpack:"rc,omitempty"`
	Eligible        bool              `msgpack:"el,omitempty"`
	Incarnation     uint64            `msgpack:"in"`
	SeenIncarnation uint64            `msgpack:"si,omitempty"`
	At              uint64            `msgpack:"at,omitempty"`
	Count           int               `msgpack:"n,omitempty"`
	Disk            uint64            `msgpack:"dk,omitempty"`
	Stamp           uint64            `msgpack:"sp,omitempty"`
	Echo            uint64            `msgpack:"ec,omitempty"`
	Stable          uint64            `msgpack:"st,omitempty"`
	DiskFull        bool              `msgpack:"df,omitempty"`
}

func toShadowMessage(m Message) shadowMessage {
	s := shadowMessage{uint8(m.Type), uint32(m.From), uint32(m.To), uint64(m.Epoch), uint8(m.Role), uint32(m.Primary),
		uint64(m.LastOffset), uint64(m.LastEpoch), uint64(m.Commit), uint64(m.Prev), uint64(m.PrevEpoch), nil,
		m.Reject, m.Probe, m.Fresher, nil, uint64(m.ISREpoch), uint64(m.ISRAt), m.Recovering, m.Eligible,
		m.Incarnation, m.SeenIncarnation, uint64(m.At), m.Count, m.Disk, m.Stamp, m.Echo, uint64(m.Stable), m.DiskFull}
	for _, r := range m.Records {
		s.Records = append(s.Records, shadowRecord{uint64(r.Offset), uint64(r.Epoch), r.Type, r.ClientID, r.Seq, r.Time, r.Data, uint64(r.OrigEpoch), uint64(r.OrigOffset)})
	}
	for _, mb := range m.ISR {
		s.ISR = append(s.ISR, shadowISRMember{uint32(mb.ID), mb.Incarnation, mb.Disk})
	}
	return s
}

func fromShadowMessage(s shadowMessage) Message {
	m := Message{MsgType(s.Type), NodeID(s.From), NodeID(s.To), eventlog.Epoch(s.Epoch), Role(s.Role), NodeID(s.Primary),
		eventlog.Offset(s.LastOffset), eventlog.Epoch(s.LastEpoch), eventlog.Offset(s.Commit), eventlog.Offset(s.Prev),
		eventlog.Epoch(s.PrevEpoch), nil, s.Reject, s.Probe, s.Fresher, nil, eventlog.Epoch(s.ISREpoch),
		eventlog.Offset(s.ISRAt), s.Recovering, s.Eligible, s.Incarnation, s.SeenIncarnation, eventlog.Offset(s.At), s.Count,
		s.Disk, s.Stamp, s.Echo, eventlog.Offset(s.Stable), s.DiskFull}
	if s.Records != nil {
		m.Records = make([]eventlog.Record, 0, len(s.Records))
	}
	for _, r := range s.Records {
		m.Records = append(m.Records, eventlog.Record{Offset: eventlog.Offset(r.Offset), Epoch: eventlog.Epoch(r.Epoch),
			Type: r.Type, ClientID: r.ClientID, Seq: r.Seq, Time: r.Time, Data: r.Data,
			OrigEpoch: eventlog.Epoch(r.OEpoch), OrigOffset: eventlog.Offset(r.OOffset)})
	}
	if s.ISR != nil {
		m.ISR = make([]ISRMember, 0, len(s.ISR))
	}
	for _, mb := range s.ISR {
		m.ISR = append(m.ISR, ISRMember{NodeID(mb.ID), mb.Incarnation, mb.Disk})
	}
	return m
}

// randomMessages covers every field present and absent (so the map header
// is a fixmap or a map16), record and ISR arrays around the fixarray limit,
// and integers at each width.
func randomMessages(seed uint64, n int) []Message {
	rng := rand.New(rand.NewPCG(seed, 0))
	u := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return []uint64{1, 127, 128, 255, 256, math.MaxUint32, math.MaxUint64}[rng.IntN(7)]
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	b := func() bool { return rng.IntN(2) == 0 }
	msgs := make([]Message, n)
	for i := range msgs {
		m := Message{Type: MsgType(u()), From: NodeID(u()), To: NodeID(u()), Epoch: eventlog.Epoch(u()), Role: Role(u()),
			Primary: NodeID(u()), LastOffset: eventlog.Offset(u()), LastEpoch: eventlog.Epoch(u()), Commit: eventlog.Offset(u()),
			Prev: eventlog.Offset(u()), PrevEpoch: eventlog.Epoch(u()), Reject: b(), Probe: b(), Fresher: b(),
			ISREpoch: eventlog.Epoch(u()), ISRAt: eventlog.Offset(u()), Recovering: b(), Eligible: b(),
			Incarnation: u(), SeenIncarnation: u(), At: eventlog.Offset(u()), Count: int(int64(u())),
			Disk: u(), Stamp: u(), Echo: u(), Stable: eventlog.Offset(u()), DiskFull: b()}
		if b() {
			m.Count = -int(u() >> 1)
		}
		if b() {
			for range []int{1, 15, 16, 17, 300}[rng.IntN(5)] {
				r := eventlog.Record{Offset: eventlog.Offset(u()), Epoch: eventlog.Epoch(u()), Type: "chat.send", Seq: u(), Time: int64(u())}
				if b() {
					r.ClientID = fmt.Sprint("c", rng.IntN(3))
				}
				if b() {
					r.Data = make([]byte, rng.IntN(300))
					for j := range r.Data {
						r.Data[j] = byte(rng.Uint32())
					}
				}
				m.Records = append(m.Records, r)
			}
		}
		for range rng.IntN(3) {
			m.ISR = append(m.ISR, ISRMember{ID: NodeID(u()), Incarnation: u(), Disk: u()})
		}
		msgs[i] = m
	}
	return msgs
}

func TestEncodeMessage_MatchesReflection(t *testing.T) {
	for i, m := range randomMessages(1, 300) {
		s := toShadowMessage(m)
		want, err := msgpack.Marshal(&s)
		require.NoError(t, err)
		got, err := EncodeMessage(m)
		require.NoError(t, err)
		require.Equal(t, want, got, "message %d: %v", i, m)
	}
}

func TestDecodeMessage_RoundTrip(t *testing.T) {
	for i, m := range randomMessages(2, 300) {
		b, err := EncodeMessage(m)
		require.NoError(t, err)
		got, err := DecodeMessage(b)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, m, got, "message %d", i)
	}
}

// TestDecodeMessage_Compatible feeds encodings the codec never writes but
// reflection read; the expected message is checked against reflection's.
func TestDecodeMessage_Compatible(t *testing.T) {
	type reordered struct {
		Count   int8           `msgpack:"n"`
		Unknown map[string]any `msgpack:"zz"`
		ISR     []any          `msgpack:"i"`
		Records []any          `msgpack:"rs"`
		Reject  any            `msgpack:"x"`
		From    uint8          `msgpack:"f"`
		Type    int16          `msgpack:"t"`
		Epoch   uint32         `msgpack:"e"`
	}
	in := encodeCompat(t, reordered{
		Count:   -3,
		Unknown: map[string]any{"a": []any{1, "x", nil}, "b": 2.5},
		ISR:     []any{map[string]any{"inc": 4, "id": 2, "zz": true}},
		Records: []any{map[string]any{"type": "t", "offset": 9, "extra": []any{1}}, nil},
		Reject:  nil,
		From:    2, Type: int16(MsgFetch), Epoch: 7,
	}, false)
	_, err := DecodeMessage(in)
	require.Error(t, err, "a nil record is an error (reflection made it a zero record)")

	in = encodeCompat(t, reordered{
		Count:   -3,
		Unknown: map[string]any{"a": []any{1, "x", nil}, "b": 2.5},
		ISR:     []any{map[string]any{"inc": 4, "id": 2, "zz": true}},
		Records: []any{map[string]any{"type": "t", "offset": 9, "extra": []any{1}}},
		Reject:  true,
		From:    2, Type: int16(MsgFetch), Epoch: 7,
	}, true)
	want := Message{Type: MsgFetch, From: 2, Epoch: 7, Count: -3, Reject: true,
		ISR: []ISRMember{{ID: 2, Incarnation: 4}}, Records: []eventlog.Record{{Offset: 9, Type: "t"}}}
	var s shadowMessage
	require.NoError(t, msgpack.Unmarshal(in, &s))
	require.Equal(t, want, fromShadowMessage(s), "the expectation is reflection's")
	got, err := DecodeMessage(in)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// Every integer field written by the codec in compact form instead.
	for i, m := range randomMessages(3, 50) {
		in := encodeCompat(t, toShadowMessage(m), true)
		got, err := DecodeMessage(in)
		require.NoError(t, err, "message %d", i)
		assert.Equal(t, m, got, "message %d", i)
	}
}

func encodeCompat(t *testing.T, v any, compact bool) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(compact)
	require.NoError(t, enc.Encode(v))
	return buf.Bytes()
}

func TestDecodeMessage_Rejects(t *testing.T) {
	valid, err := EncodeMessage(Message{Type: MsgAppend, Records: []eventlog.Record{{Offset: 1, Type: "t", Data: []byte("d")}},
		ISR: []ISRMember{{ID: 1, Incarnation: 1}}})
	require.NoError(t, err)
	cases := []struct {
		name string
		in   []byte
		want string // substring of the error
	}{
		{"empty", nil, "truncated"},
		{"nil message", []byte{0xc0}, "want a map"},
		{"array message", []byte{0x91, 0x01}, "want a map"},
		{"type beyond uint8", []byte("\x81\xa1t\xcd\x01\x00"), "256 out of range"},
		{"node id beyond uint32", []byte("\x81\xa1f\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), "4294967296 out of range"},
		{"negative node id", []byte("\x81\xa2to\xff"), "out of range"},
		{"isr id beyond uint32", []byte("\x81\xa1i\x91\x81\xa2id\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), "member 0"},
		{"string epoch", []byte("\x81\xa1e\xa1x"), "want an integer"},
		{"int reject", []byte("\x81\xa1x\x01"), "want a bool"},
		{"map records", []byte("\x81\xa2rs\x80"), "want an array"},
		{"record not a map", []byte("\x81\xa2rs\x91\x01"), "record 0"},
		{"isr member not a map", []byte("\x81\xa1i\x91\x01"), "member 0"},
		{"int key", []byte("\x81\x01\x01"), "want a string"},
		{"a second value", append(bytes.Clone(valid), 0xc0), "trailing"},
		{"array declaring 4G elements", []byte("\x81\xa2rs\xdd\xff\xff\xff\xff"), "truncated"},
		{"unknown value nested too deep", append([]byte("\x81\xa2zz"), append(bytes.Repeat([]byte{0x91}, maxMsgpackDepth+2), 0x01)...), "deep"},
	}
	for i := range len(valid) {
		cases = append(cases, struct {
			name string
			in   []byte
			want string
		}{fmt.Sprintf("truncated to %d bytes", i), valid[:i], "truncated"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeMessage(c.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// TestDecodeMessage_Records: the records own their memory (the transport
// may reuse the frame), and one record's payload cannot grow into the
// next's although they share an array.
func TestDecodeMessage_Records(t *testing.T) {
	m := Message{Type: MsgAppend, Records: []eventlog.Record{
		{Offset: 1, Type: "chat.send", ClientID: "a", Data: []byte("one")},
		{Offset: 2, Type: "chat.send", ClientID: "a", Data: nil},
		{Offset: 3, Type: "replica.isr", Data: []byte{}},
		{Offset: 4, Type: "chat.send", ClientID: "b", Data: []byte("four")},
	}}
	b, err := EncodeMessage(m)
	require.NoError(t, err)
	got, err := DecodeMessage(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = 0
	}
	assert.Equal(t, m, got, "unchanged when the frame is overwritten")

	got.Records[0].Data = append(got.Records[0].Data, "XYZW"...)
	assert.Equal(t, "four", string(got.Records[3].Data), "appending to one payload leaves the next alone")
	assert.Nil(t, got.Records[1].Data)
	assert.NotNil(t, got.Records[2].Data)
}
