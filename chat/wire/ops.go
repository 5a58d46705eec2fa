package wire

// Version is the protocol version this package speaks. A hello with another
// version is refused with unsupported_version.
const Version uint16 = 1

// Op names. Each request op has a request body type XRequest and a response
// body type XResponse below (Hello and HelloOK for the handshake).
const (
	OpHello          = "hello"
	OpRegister       = "register"
	OpLogin          = "login"
	OpLogout         = "logout"
	OpUsers          = "users"
	OpSend           = "send"
	OpRead           = "read"
	OpHistory        = "history"
	OpDeleteMessages = "delete_messages"
	OpDeleteAccount  = "delete_account"
	OpListen         = "listen"
	OpAck            = "ack"
	OpStatus         = "status"
	OpPing           = "ping"
	OpMetrics        = "metrics"
)

// PushMessage is the op of the push frame that carries a Message (body) to a
// listening client.
const PushMessage = "message"

// Hello roles (who is connecting) and replica roles (HelloOK, ReplicaStatus).
const (
	RoleClient = "client" // a chat client
	// RolePeer is reserved for replica-to-replica links. This package only
	// decodes such a hello; the server hands the connection (see
	// Conn.Hijack) to the replication transport, which authenticates it.
	RolePeer    = "peer"
	RolePrimary = "primary"
	RoleBackup  = "backup"
	RoleDown    = "down" // in ReplicaStatus: not reachable
)

// KnownOp reports whether op is a request op of this version (hello
// included).
func KnownOp(op string) bool {
	switch op {
	case OpHello, OpRegister, OpLogin, OpLogout, OpUsers, OpSend, OpRead,
		OpHistory, OpDeleteMessages, OpDeleteAccount, OpListen, OpAck,
		OpStatus, OpPing, OpMetrics:
		return true
	}
	return false
}

// Mutating reports whether op changes replicated state. Such a request must
// carry a non-zero Frame.Seq: with the connection's Hello.ClientID it names
// the request, so that a retry (same ClientID, same Seq) is applied once and
// answered with the original result.
func Mutating(op string) bool {
	switch op {
	case OpRegister, OpSend, OpRead, OpDeleteMessages, OpDeleteAccount, OpAck:
		return true
	}
	return false
}

// CheckRequest applies the op-independent rules to a request received after
// the handshake: a known op other than hello (unknown_op, bad_request) and a
// Seq on every mutating op (bad_request). It returns nil if they hold.
func CheckRequest(f Frame) *Error {
	switch {
	case !KnownOp(f.Op):
		return Errorf(CodeUnknownOp, "unknown op %q", f.Op)
	case f.Op == OpHello:
		return Errorf(CodeBadRequest, "hello is only valid as the first frame")
	case Mutating(f.Op) && f.Seq == 0:
		return Errorf(CodeBadRequest, "%s is mutating and needs a seq", f.Op)
	}
	return nil
}

// Hello is the body of the first request on every connection.
type Hello struct {
	Version uint16 `msgpack:"version"` // the protocol version the client speaks
	Role    string `msgpack:"role"`    // RoleClient (or RolePeer)
	// ClientID identifies the client process, stable across its connections
	// and failovers (for instance 16 random bytes in hex, drawn at start).
	// With Frame.Seq it makes mutating requests exactly-once. Required for
	// RoleClient, at most MaxClientIDLen bytes.
	ClientID string `msgpack:"client_id"`
	// Software names the client, e.g. "replichat-chat/0.1", for logs.
	Software string `msgpack:"software"`
}

// MaxClientIDLen bounds Hello.ClientID, which the server stores per client.
const MaxClientIDLen = 64

// HelloOK is the body of the successful response to a hello.
type HelloOK struct {
	Version  uint16 `msgpack:"version"`   // the version the server will speak
	ServerID uint32 `msgpack:"server_id"` // the replica's id
	Role     string `msgpack:"role"`      // RolePrimary or RoleBackup
	Epoch    uint64 `msgpack:"epoch"`     // the replica's current epoch
	// Primary is the address of the primary as this replica knows it (its
	// own when it is the primary), "" if unknown.
	Primary string `msgpack:"primary"`
	// MaxFrame is the largest frame body, in bytes, the server accepts and
	// sends. A client must not send larger frames.
	MaxFrame uint32 `msgpack:"max_frame"`
}

// RegisterRequest creates an account. Mutating.
type RegisterRequest struct {
	User     string `msgpack:"user"`
	Password string `msgpack:"password"`
}

// RegisterResponse confirms the account's name.
type RegisterResponse struct {
	User string `msgpack:"user"`
}

// LoginRequest authenticates the connection as User.
type LoginRequest struct {
	User     string `msgpack:"user"`
	Password string `msgpack:"password"`
}

// LoginResponse confirms the login.
type LoginResponse struct {
	User   string `msgpack:"user"`
	Unread int    `msgpack:"unread"` // messages queued for the user, not yet delivered
}

// LogoutRequest ends the connection's login (and its listen, if any).
type LogoutRequest struct{}

// LogoutResponse is empty.
type LogoutResponse struct{}

// UsersRequest lists accounts, by name order, one page at a time.
type UsersRequest struct {
	// Pattern is a shell-style wildcard ('*', '?'); "" means "*".
	Pattern string `msgpack:"pattern"`
	// After is the cursor: only names greater than it. "" starts at the
	// beginning; pass the previous response's Next to continue.
	After string `msgpack:"after"`
	// Limit is the page size; 0 means the server's default, and the server
	// may cap it.
	Limit int `msgpack:"limit"`
}

// UsersResponse is one page of accounts.
type UsersResponse struct {
	Users []UserInfo `msgpack:"users"`
	Next  string     `msgpack:"next"` // cursor for the next page; "" when this is the last
}

// UserInfo is one account in a UsersResponse.
type UserInfo struct {
	Name   string `msgpack:"name"`
	Online bool   `msgpack:"online"` // has a logged-in connection on the primary
}

// SendRequest sends a message from the logged-in user. Mutating.
type SendRequest struct {
	To   string `msgpack:"to"`
	Body string `msgpack:"body"`
}

// SendResponse returns the message as stored, with its id and time; sent
// once it is committed.
type SendResponse struct {
	Message Message `msgpack:"message"`
}

// ReadRequest delivers queued messages, oldest first, and marks them
// delivered. Mutating: a retry returns the same messages.
type ReadRequest struct {
	Limit int `msgpack:"limit"` // at most this many; 0 means the server's default
}

// ReadResponse holds the delivered messages, oldest first.
type ReadResponse struct {
	Messages []Message `msgpack:"messages"`
}

// HistoryRequest pages through the user's messages, sent and received,
// oldest first.
type HistoryRequest struct {
	With  string `msgpack:"with"`  // only messages exchanged with this user; "" for all
	After uint64 `msgpack:"after"` // cursor: only messages with a greater id; 0 starts at the beginning
	Limit int    `msgpack:"limit"` // page size; 0 means the server's default
	// Last asks for the page at the end instead: the newest Limit messages
	// (before the cursor Before, when it is not 0), still oldest first
	// within the page; After is then ignored. The response's Prev is the
	// cursor of the page before it. Omitted when false, so that requests
	// without it are encoded as before; a server that predates it ignores
	// it and pages from the beginning.
	Last bool `msgpack:"last,omitempty"`
	// Before is the cursor of a Last page: only messages before it; 0
	// means from the very end. Pass the previous response's Prev.
	Before uint64 `msgpack:"before,omitempty"`
}

// HistoryResponse is one page of history.
type HistoryResponse struct {
	Messages []Message `msgpack:"messages"`
	Next     uint64    `msgpack:"next"` // cursor for the next page; 0 when this is the last
	// Prev answers a Last request: the cursor of the older page before
	// this one (pass it as Before), 0 when this page starts the history
	// (and always 0 otherwise). Clients that predate it ignore it.
	Prev uint64 `msgpack:"prev"`
}

// DeleteMessagesRequest deletes messages of the user's by id. Mutating.
type DeleteMessagesRequest struct {
	IDs []uint64 `msgpack:"ids"`
}

// DeleteMessagesResponse lists the ids actually deleted.
type DeleteMessagesResponse struct {
	Deleted []uint64 `msgpack:"deleted"`
}

// DeleteAccountRequest deletes the logged-in user's account and logs the
// connection out. Mutating.
type DeleteAccountRequest struct{}

// DeleteAccountResponse names the deleted account.
type DeleteAccountResponse struct {
	User string `msgpack:"user"`
}

// ListenRequest asks the server to push the user's messages on this
// connection: first the queued ones, then each new one once committed.
type ListenRequest struct{}

// ListenResponse is empty; it precedes the first push.
type ListenResponse struct{}

// AckRequest marks pushed messages delivered. Mutating.
type AckRequest struct {
	IDs []uint64 `msgpack:"ids"`
}

// AckResponse is empty.
type AckResponse struct{}

// StatusRequest asks a replica for the cluster as it sees it. Any replica
// answers, logged in or not.
type StatusRequest struct{}

// StatusResponse lists every replica of the cluster, by id.
type StatusResponse struct {
	Replicas []ReplicaStatus `msgpack:"replicas"`
}

// ReplicaStatus is one replica as seen by the replica that answers.
type ReplicaStatus struct {
	ID     uint32 `msgpack:"id"`
	Addr   string `msgpack:"addr"`
	Role   string `msgpack:"role"` // RolePrimary, RoleBackup or RoleDown
	Epoch  uint64 `msgpack:"epoch"`
	LogEnd uint64 `msgpack:"log_end"` // offset of its last log record
	Commit uint64 `msgpack:"commit"`  // highest committed offset it knows
	InSync bool   `msgpack:"in_sync"` // member of the in-sync set
	// Waiting says why the replica is not serving, when it is not (e.g.
	// "waiting for replica 2 (last in-sync set 0,2)"); "" otherwise.
	Waiting string `msgpack:"waiting"`
	// DiskFull, in a replica's own entry, says that its disk is below its
	// free-space reserve and it takes no writes (e.g. "disk nearly full on
	// replica 1: 40 MiB free, reserve 64 MiB; not taking writes"); ""
	// otherwise. A primary in that state still serves reads.
	DiskFull string `msgpack:"disk_full,omitempty"`
}

// PingRequest checks liveness and keeps an idle connection open.
type PingRequest struct{}

// PingResponse is empty.
type PingResponse struct{}

// Message is a chat message, as sent, read, pushed and listed.
type Message struct {
	ID     uint64 `msgpack:"id"` // unique cluster-wide, stable across failover
	From   string `msgpack:"from"`
	To     string `msgpack:"to"`
	Body   string `msgpack:"body"`
	SentAt int64  `msgpack:"sent_at"` // the primary's clock when accepted, Unix nanoseconds
}
