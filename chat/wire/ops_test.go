package wire

// These tests pin the op bodies: every body survives Encode and Decode
// unchanged, keys are the documented snake_case names, and the op tables
// (mutating, known) and error codes behave as docs/wire.md says.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

var sampleMessage = Message{ID: 1 << 40, From: "alice", To: "bob", Body: "héllo\x00", SentAt: -1}

// sampleBodies holds one non-zero value of every body type, by name.
var sampleBodies = []struct {
	name string
	body any
}{
	{"Hello", Hello{Version: 1, Role: RoleClient, ClientID: "c0ffee", Software: "test/1"}},
	{"HelloOK", HelloOK{Version: 1, ServerID: 2, Role: RoleBackup, Epoch: 7, Primary: "127.0.0.1:7100", MaxFrame: 1 << 20}},
	{"RegisterRequest", RegisterRequest{User: "alice", Password: "pw"}},
	{"RegisterResponse", RegisterResponse{User: "alice"}},
	{"LoginRequest", LoginRequest{User: "alice", Password: "pw"}},
	{"LoginResponse", LoginResponse{User: "alice", Unread: 3}},
	{"LogoutRequest", LogoutRequest{}},
	{"LogoutResponse", LogoutResponse{}},
	{"UsersRequest", UsersRequest{Pattern: "a*", After: "al", Limit: 50}},
	{"UsersResponse", UsersResponse{Users: []UserInfo{{Name: "alice", Online: true}, {Name: "bob"}}, Next: "bob"}},
	{"SendRequest", SendRequest{To: "bob", Body: "hi"}},
	{"SendResponse", SendResponse{Message: sampleMessage}},
	{"ReadRequest", ReadRequest{Limit: 10}},
	{"ReadResponse", ReadResponse{Messages: []Message{sampleMessage, {ID: 2}}}},
	{"HistoryRequest", HistoryRequest{With: "bob", After: 99, Limit: 20}},
	{"HistoryResponse", HistoryResponse{Messages: []Message{sampleMessage}, Next: 1 << 40}},
	{"HistoryRequestLast", HistoryRequest{With: "bob", Limit: 20, Last: true, Before: 77}},
	{"HistoryResponsePrev", HistoryResponse{Messages: []Message{sampleMessage}, Prev: 12}},
	{"DeleteMessagesRequest", DeleteMessagesRequest{IDs: []uint64{1, 1 << 63}}},
	{"DeleteMessagesResponse", DeleteMessagesResponse{Deleted: []uint64{1}}},
	{"DeleteAccountRequest", DeleteAccountRequest{}},
	{"DeleteAccountResponse", DeleteAccountResponse{User: "alice"}},
	{"ListenRequest", ListenRequest{}},
	{"ListenResponse", ListenResponse{}},
	{"AckRequest", AckRequest{IDs: []uint64{5, 6}}},
	{"AckResponse", AckResponse{}},
	{"StatusRequest", StatusRequest{}},
	{"StatusResponse", StatusResponse{Replicas: []ReplicaStatus{
		{ID: 0, Addr: "127.0.0.1:7100", Role: RolePrimary, Epoch: 3, LogEnd: 100, Commit: 99, InSync: true},
		{ID: 2, Addr: "127.0.0.1:7102", Role: RoleDown, Waiting: "waiting for replica 1"},
	}}},
	{"PingRequest", PingRequest{}},
	{"PingResponse", PingResponse{}},
	{"Message", sampleMessage},
}

func TestBodies_RoundTrip(t *testing.T) {
	for _, tc := range sampleBodies {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := Encode(tc.body)
			require.NoError(t, err)
			got := reflect.New(reflect.TypeOf(tc.body))
			require.NoError(t, Decode(raw, got.Interface()))
			assert.Equal(t, tc.body, got.Elem().Interface())

			// Through a whole frame too, as a response would travel.
			wire, err := EncodeFrame(nil, Frame{Kind: KindResponse, ID: 9, Op: "x", Body: raw}, DefaultMaxFrame)
			require.NoError(t, err)
			f, err := DecodeFrame(wire[headerSize:])
			require.NoError(t, err)
			got = reflect.New(reflect.TypeOf(tc.body))
			require.NoError(t, Decode(f.Body, got.Interface()))
			assert.Equal(t, tc.body, got.Elem().Interface())
		})
	}
}

// TestBodies_Keys checks that every field has an explicit, snake_case tag, so
// the Go field names never leak into the protocol.
func TestBodies_Keys(t *testing.T) {
	for _, tc := range sampleBodies {
		typ := reflect.TypeOf(tc.body)
		for i := range typ.NumField() {
			tag := typ.Field(i).Tag.Get("msgpack")
			// omitempty only for fields added later, so that older
			// requests keep their bytes.
			assert.Regexp(t, `^[a-z][a-z_]*(,omitempty)?$`, tag, "%s.%s", typ.Name(), typ.Field(i).Name)
			assert.NotEqual(t, reflect.Map, typ.Field(i).Type.Kind(), "no maps in bodies")
		}
	}
}

func TestEncode_Compact(t *testing.T) {
	raw, err := Encode(SendRequest{To: "bob", Body: "hi"})
	require.NoError(t, err)
	assert.Equal(t, []byte{0x82, 0xa2, 't', 'o', 0xa3, 'b', 'o', 'b', 0xa4, 'b', 'o', 'd', 'y', 0xa2, 'h', 'i'}, []byte(raw))

	raw, err = Encode(ReadRequest{Limit: 5})
	require.NoError(t, err)
	assert.Equal(t, []byte{0x81, 0xa5, 'l', 'i', 'm', 'i', 't', 0x05}, []byte(raw), "integers use the smallest encoding")
}

// TestEncode_HistoryCompatible pins that the fields added to history for
// paging from the end leave a request without them as it was encoded
// before they existed.
func TestEncode_HistoryCompatible(t *testing.T) {
	raw, err := Encode(HistoryRequest{With: "bob", After: 9, Limit: 5})
	require.NoError(t, err)
	var keys map[string]any
	require.NoError(t, msgpack.Unmarshal(raw, &keys))
	assert.Len(t, keys, 3, "with, after, limit: %v", keys)

	raw, err = Encode(HistoryRequest{Limit: 5, Last: true})
	require.NoError(t, err)
	require.NoError(t, msgpack.Unmarshal(raw, &keys))
	assert.Equal(t, true, keys["last"])
}

func TestEncode_Error(t *testing.T) {
	_, err := Encode(make(chan int))
	assert.Error(t, err)
	_, err = NewRequest(1, OpPing, 0, make(chan int))
	assert.Error(t, err)
	_, err = NewResponse(Frame{ID: 1}, make(chan int))
	assert.Error(t, err)
	_, err = NewPush(PushMessage, make(chan int))
	assert.Error(t, err)
}

func TestDecode(t *testing.T) {
	var empty SendRequest
	require.NoError(t, Decode(nil, &empty), "an absent body is the zero body")
	assert.Equal(t, SendRequest{}, empty)

	// Unknown keys are ignored: a newer client may add fields.
	raw := msgpackMarshal(t, map[string]any{"to": "bob", "body": "hi", "priority": 3})
	var got SendRequest
	require.NoError(t, Decode(raw, &got))
	assert.Equal(t, SendRequest{To: "bob", Body: "hi"}, got)

	bad := map[string][]byte{
		"garbage":        {0xc1},
		"trailing bytes": {0x80, 0x80},
		"truncated":      {0x82, 0xa2, 't', 'o'},
		"wrong type":     msgpackMarshal(t, map[string]any{"to": []int{1}}),
		"forged length":  {0xdb, 0xff, 0xff, 0xff, 0xff},
		"too deep":       deepArray(maxDepth + 1),
	}
	for name, raw := range bad {
		t.Run(name, func(t *testing.T) {
			var v SendRequest
			err := Decode(raw, &v)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrMalformedBody)
			assert.Equal(t, CodeBadRequest, ErrorOf(err).Code)
		})
	}
}

func TestOps(t *testing.T) {
	tests := []struct {
		op       string
		known    bool
		mutating bool
	}{
		{OpHello, true, false},
		{OpRegister, true, true},
		{OpLogin, true, false},
		{OpLogout, true, false},
		{OpUsers, true, false},
		{OpSend, true, true},
		{OpRead, true, true},
		{OpHistory, true, false},
		{OpDeleteMessages, true, true},
		{OpDeleteAccount, true, true},
		{OpListen, true, false},
		{OpAck, true, true},
		{OpStatus, true, false},
		{OpPing, true, false},
		{PushMessage, false, false},
		{"", false, false},
		{"SEND", false, false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.known, KnownOp(tc.op), "KnownOp(%q)", tc.op)
		assert.Equal(t, tc.mutating, Mutating(tc.op), "Mutating(%q)", tc.op)
	}
}

func TestCheckRequest(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want Code // "" for no error
	}{
		{"query", Frame{Kind: KindRequest, ID: 1, Op: OpHistory}, ""},
		{"mutating with seq", Frame{Kind: KindRequest, ID: 1, Op: OpSend, Seq: 4}, ""},
		{"mutating without seq", Frame{Kind: KindRequest, ID: 1, Op: OpSend}, CodeBadRequest},
		{"unknown op", Frame{Kind: KindRequest, ID: 1, Op: "fly"}, CodeUnknownOp},
		{"second hello", Frame{Kind: KindRequest, ID: 1, Op: OpHello}, CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := CheckRequest(tc.f)
			if tc.want == "" {
				assert.Nil(t, e)
				return
			}
			require.NotNil(t, e)
			assert.Equal(t, tc.want, e.Code)
		})
	}
}

func TestCode_Retryable(t *testing.T) {
	all := []Code{CodeBadRequest, CodeBadHandshake, CodeUnsupportedVersion, CodeUnknownOp,
		CodeFrameTooLarge, CodeNotLoggedIn, CodeNotPrimary, CodeUnavailable, CodeInvalidName,
		CodeUserExists, CodeUnknownUser, CodeWrongPassword, CodeRateLimited, CodeMessageTooLarge,
		CodeEmptyMessage, CodeQueueFull, CodeNotFound, CodeForbidden, CodeTooManyConnections,
		CodeTimeout, CodeInternal, Code("from_the_future")}
	retryable := map[Code]bool{CodeNotPrimary: true, CodeUnavailable: true, CodeTimeout: true}
	for _, c := range all {
		assert.Equal(t, retryable[c], c.Retryable(), "%s", c)
		assert.Equal(t, retryable[c], (&Error{Code: c}).Retryable(), "%s", c)
	}
}

func TestError_Error(t *testing.T) {
	assert.Equal(t, "wire: not_found: no message 7", Errorf(CodeNotFound, "no message %d", 7).Error())
	assert.Equal(t, "wire: not_primary: backup (primary: 10.0.0.1:7100)",
		(&Error{Code: CodeNotPrimary, Message: "backup", Primary: "10.0.0.1:7100"}).Error())
}

func TestErrorOf(t *testing.T) {
	remote := Errorf(CodeQueueFull, "bob has 1000 queued messages")
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"remote error", fmt.Errorf("send: %w", remote), CodeQueueFull},
		{"too large", &FrameSizeError{Size: 10, Max: 5}, CodeFrameTooLarge},
		{"malformed", &MalformedError{Reason: "x"}, CodeBadRequest},
		{"empty", ErrEmptyFrame, CodeBadRequest},
		{"truncated", ErrTruncatedFrame, CodeBadRequest},
		{"body", fmt.Errorf("%w: x", ErrMalformedBody), CodeBadRequest},
		{"deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), CodeTimeout},
		{"other", io.ErrClosedPipe, CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ErrorOf(tc.err)
			require.NotNil(t, e)
			assert.Equal(t, tc.want, e.Code)
			assert.NotEmpty(t, e.Message)
		})
	}
	assert.Nil(t, ErrorOf(nil))
	assert.Same(t, remote, ErrorOf(fmt.Errorf("x: %w", remote)))
	assert.NotContains(t, ErrorOf(errors.New("secret path /etc")).Message, "secret", "internal errors do not leak")
}

func msgpackMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

// deepArray returns n nested one-element arrays around a nil.
func deepArray(n int) []byte {
	b := make([]byte, 0, n+1)
	for range n {
		b = append(b, 0x91)
	}
	return append(b, 0xc0) // msgpack nil
}
