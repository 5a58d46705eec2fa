// Package transport is the authenticated TCP link between the replicas of one
// cluster. It moves opaque messages ([]byte, the replication core's encoded
// messages) from one replica to another and knows nothing about their content.
//
// # Connections
//
// Every replica dials every other replica and sends to a peer only over its
// own outbound connection; connections it accepts only receive. So each
// ordered pair of replicas has one TCP connection, with one writer goroutine
// on the sending side that owns it, and messages to one peer arrive in the
// order they were sent, or not at all once the connection breaks. The
// replication protocol tolerates loss, which is why [Transport.Send] never
// blocks: it drops a message when the peer's queue is full.
//
// The writer coalesces: it writes queued messages into a buffer and flushes
// only when the queue is momentarily empty, so a burst costs few syscalls.
// It reconnects with capped exponential backoff and jitter.
//
// Peer connections share the port that serves chat clients. A peer
// connection starts with [Magic]; the chat server detects it with [IsPeer]
// and hands the connection to [Transport.Accept], which runs in the server's
// goroutine for that connection.
//
// # Wire format
//
// After Magic, everything is a frame: a 4-byte big-endian length, then that
// many bytes. A frame longer than its limit is refused before anything is
// allocated for it (MaxMessage for messages, 128 bytes during the
// handshake). Handshake frames start with a type byte; after the handshake,
// a frame's body is one message, as given to Send.
//
// # Handshake
//
// Both sides prove that they hold the cluster secret without revealing it,
// so that a chat client cannot pose as a replica, and a replica of another
// cluster or with the wrong id is refused:
//
//	dialer   -> acceptor  Magic, Hello{Version, From, To, NonceD}
//	acceptor -> dialer    Challenge{NonceA, MacA}  MacA = HMAC-SHA256(secret, "acceptor"|From|To|NonceD|NonceA)
//	dialer   -> acceptor  Proof{MacD}              MacD = HMAC-SHA256(secret, "dialer"|From|To|NonceD|NonceA)
//	acceptor -> dialer    OK
//
// From and To are 4-byte big-endian ids, the nonces 32 random bytes each. The
// labels differ so that one side's MAC is never valid as the other's, and the
// fresh nonce of each side defeats replay. Either side that refuses sends a
// short error frame (no detail beyond a fixed reason) and closes; the
// reason it logs is precise. The whole handshake runs under
// HandshakeTimeout. The final OK lets the dialer know that it was accepted,
// so that a refused dialer reports why instead of writing into a closed
// connection.
//
// Messages after the handshake are not authenticated one by one: the
// handshake keeps out parties without the secret, not an attacker who can
// hijack a TCP stream (use a private network or a VPN for that).
//
// # Ownership
//
// [Transport.Run] owns the writer goroutines (and one reader per outbound
// connection that notices when the peer closes it). Accept runs in its
// caller's goroutine. A message passed to Send belongs to the transport; a
// message read from [Transport.Inbox] belongs to the reader.
//
// The cluster secret is created once per cluster with [LoadOrCreateSecret].
package transport
