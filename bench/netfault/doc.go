// Package netfault is a fault-injecting TCP proxy for a replichat cluster on
// one machine: the end-to-end tests put it between the replicas (and between
// clients and replicas) to cut, partition, flap and slow links, unprivileged,
// without touching the kernel's network configuration.
//
// # Topology
//
// A Proxy listens once per replica j (on 127.0.0.1, a port chosen by the OS
// unless Config.Listen names one) and forwards every connection it accepts
// there to j's real address (Config.Targets[j]). The replicas are started
// with --peers naming the proxy's addresses and --listen binding their real
// ones, so that replicas reach each other, and clients reach the replicas,
// only through the proxy.
//
// # Classification
//
// A connection's first bytes say what it is. A replica's peer connection
// starts with transport.Magic and a length-prefixed hello frame whose body
// carries, in plaintext, the dialer's id (From) and the acceptor's (To); see
// replica/transport's package documentation. A replica sends to a peer only
// over the connection it dialed itself, so a connection that arrives on j's
// listener with a hello from i carries the link i -> j (and, in its other
// direction, only j's handshake answers to i). Anything else is a client
// link to j. The proxy reads these first bytes itself (they are then in
// flight, as in a network) and forwards them once the link allows it. A
// connection that sends nothing within Config.ClassifyTimeout is a client
// link too.
//
// # Faults
//
// A fault is a property of a directed link, and applies to both existing and
// new connections at once: every byte that flows from replica a to replica b,
// on any connection, belongs to the link a -> b. Cut stops one direction,
// Partition and Isolate cut many at once, CutClients cuts the client links of
// one replica (both directions), SetRate slows a direction down, Heal undoes
// everything.
//
// A cut link holds its bytes, as a real partition does: the proxy stops
// reading from the sender and forwarding to the receiver, TCP keeps both
// connections open, and the sender's socket buffers fill until its writes
// block. When the link is restored the held bytes are forwarded, in order. A
// connection that arrives on a cut link is accepted and held the same way
// (the proxy does not dial the replica until the link is restored), as a
// SYN that gets no answer. In reset mode (Config.Reset, SetReset) a cut link
// instead closes every connection that has a direction on it, and every
// connection that arrives on it, as a TCP timeout would.
//
// Flap cuts and restores random links every few hundred milliseconds to a
// few seconds, from a seeded random source, for as long as its context
// lasts.
//
// # Observation
//
// Stats counts, per directed link, the connections opened, the bytes
// forwarded, how often bytes had to wait for a cut link, and the connections
// closed by reset mode, so that a test can assert that its faults really
// bit.
//
// # Ownership
//
// A Proxy owns one accept goroutine per listener and, per proxied
// connection, one goroutine per direction. Close stops them all and waits
// for them. Every method is safe for concurrent use.
package netfault
