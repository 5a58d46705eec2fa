// Package wire is the client-server protocol of replichat: how frames are
// laid out on a TCP (or TLS) connection, the handshake, the operations with
// their request and response bodies, server pushes, and the error codes.
// docs/wire.md is the specification for writers of other clients; this
// package is its Go implementation, shared by chat/server and chat/client.
//
// wire is a leaf: it knows nothing of chat state or replication. The server
// maps between these types and the chat and replica packages.
//
// # Framing
//
// A frame is a 4-byte big-endian body length followed by a msgpack body, the
// [Frame] envelope. A length of 0 or above the maximum frame size
// ([DefaultMaxFrame] unless configured) is rejected before anything is
// allocated for the body. The envelope is encoded and decoded by hand
// ([EncodeFrame], [DecodeFrame]) so that its rules are exact and a hostile
// frame can make the reader allocate no more than its length; op bodies are
// msgpack maps produced with [Encode] and read with [Decode].
//
// # Conversation
//
// The client's first frame is a hello request ([Conn.Handshake] on the
// client, [Conn.AcceptHello] on the server). After that the client sends
// requests with ids of its choosing and may pipeline them; each response
// echoes its request's id. After a listen request the server also sends push
// frames, one per message, which the client acknowledges with ack.
//
// # Exactly-once
//
// [Hello].ClientID names the client process; [Frame].Seq numbers each
// mutating request ([Mutating]). A request retried with the same pair, on any
// connection to any replica, is applied once and answered with the original
// result. Retrying is how a client rides out failover: codes whose
// [Code.Retryable] is true (not_primary, unavailable, timeout) say so.
//
// # Deadlines
//
// [Conn] uses the deadlines of its net.Conn and sets none itself: the server
// sets a read deadline (idle timeout) before each read and a write deadline
// before each write, so that a peer that stalls in the middle of a frame
// cannot hold a goroutine forever. After any read error the connection is
// closed.
package wire
