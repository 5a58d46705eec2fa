package transport

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"
)

// NodeID identifies a replica within its cluster.
type NodeID uint32

// String returns the id in decimal, as in --peers.
func (id NodeID) String() string { return strconv.FormatUint(uint64(id), 10) }

// Defaults for the zero values of Config fields.
const (
	DefaultDialTimeout      = 2 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultWriteTimeout     = 5 * time.Second
	DefaultReconnectMin     = 20 * time.Millisecond
	DefaultReconnectMax     = time.Second
	DefaultMaxMessage       = 16 << 20
	DefaultQueueLen         = 1024
	DefaultInboxLen         = 1024
)

// MinSecretLen is the shortest cluster secret New accepts, in bytes.
const MinSecretLen = 16

// Config configures a Transport. Zero durations and sizes take the defaults
// above; negative ones are rejected.
type Config struct {
	// Self is this replica's id; it must be a key of Peers.
	Self NodeID
	// Peers maps every replica of the cluster, Self included, to the
	// host:port it listens on.
	Peers map[NodeID]string
	// Secret is the cluster secret, at least MinSecretLen bytes, the same on
	// every replica. New copies it.
	Secret []byte

	// DialTimeout bounds one TCP connect.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the whole handshake, on both sides. It is also
	// how long an accepted connection that never completes a handshake
	// (a stray client, a port scanner) holds its goroutine.
	HandshakeTimeout time.Duration
	// WriteTimeout is how long a write to a peer may make no progress before
	// the connection is dropped, so that a stalled peer cannot hold its
	// queue forever.
	WriteTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the delay between connection
	// attempts to a peer; it doubles after each failure, with jitter. A
	// connection that stayed up for ReconnectMax is redialled at once when it
	// breaks.
	ReconnectMin, ReconnectMax time.Duration

	// MaxMessage is the largest message, in bytes, that Send accepts and a
	// reader allocates for.
	MaxMessage int
	// QueueLen is the number of messages queued per peer before Send drops.
	QueueLen int
	// InboxLen is the capacity of the Inbox channel. When it is full,
	// readers stop reading, which pushes back on the senders through TCP.
	InboxLen int

	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns c with zero fields set to their defaults and Peers
// and Secret copied, or an error wrapping ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	if len(c.Peers) == 0 {
		return c, fmt.Errorf("%w: no peers", ErrInvalidConfig)
	}
	if _, ok := c.Peers[c.Self]; !ok {
		return c, fmt.Errorf("%w: self %d is not in peers", ErrInvalidConfig, c.Self)
	}
	peers := make(map[NodeID]string, len(c.Peers))
	for id, addr := range c.Peers {
		if addr == "" {
			return c, fmt.Errorf("%w: peer %d has no address", ErrInvalidConfig, id)
		}
		peers[id] = addr
	}
	c.Peers = peers
	if len(c.Secret) < MinSecretLen {
		return c, fmt.Errorf("%w: secret is %d bytes, want at least %d", ErrInvalidConfig, len(c.Secret), MinSecretLen)
	}
	c.Secret = append([]byte(nil), c.Secret...)

	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &c.DialTimeout, DefaultDialTimeout},
		{"HandshakeTimeout", &c.HandshakeTimeout, DefaultHandshakeTimeout},
		{"WriteTimeout", &c.WriteTimeout, DefaultWriteTimeout},
		{"ReconnectMin", &c.ReconnectMin, DefaultReconnectMin},
		{"ReconnectMax", &c.ReconnectMax, DefaultReconnectMax},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return c, fmt.Errorf("%w: negative %s %v", ErrInvalidConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		return c, fmt.Errorf("%w: ReconnectMax %v < ReconnectMin %v", ErrInvalidConfig, c.ReconnectMax, c.ReconnectMin)
	}

	sizes := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxMessage", &c.MaxMessage, DefaultMaxMessage},
		{"QueueLen", &c.QueueLen, DefaultQueueLen},
		{"InboxLen", &c.InboxLen, DefaultInboxLen},
	}
	for _, s := range sizes {
		if *s.v < 0 {
			return c, fmt.Errorf("%w: negative %s %d", ErrInvalidConfig, s.name, *s.v)
		}
		if *s.v == 0 {
			*s.v = s.def
		}
	}
	// The length prefix is a uint32; keep a margin so that the reader's
	// int arithmetic cannot overflow on 32-bit platforms either.
	if c.MaxMessage > math.MaxInt32 {
		return c, fmt.Errorf("%w: MaxMessage %d exceeds %d", ErrInvalidConfig, c.MaxMessage, math.MaxInt32)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
