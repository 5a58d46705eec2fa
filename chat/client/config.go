package client

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultDialTimeout     = 5 * time.Second
	DefaultRequestTimeout  = 10 * time.Second
	DefaultFailoverTimeout = 30 * time.Second
	// DefaultKeepAlive follows docs/wire.md: an idle client pings every 15s
	// so that the server's idle timeout (at least 30s) does not cut it.
	DefaultKeepAlive = 15 * time.Second
)

// software is what the client says it is in its hello, for server logs.
const software = "replichat-client"

// maxUnansweredMutations bounds the mutating requests in flight: the server
// remembers only the last 256 per client for deduplication (docs/wire.md
// section 6), so more could make a retry undecidable.
const maxUnansweredMutations = 128

// Config configures a Client. The zero value of every field but Servers
// means its default.
type Config struct {
	// Servers are the replicas' client addresses (host:port), tried in order
	// when looking for the primary.
	Servers []string
	// ClientID names this client process to the servers; with each mutating
	// request's Seq it makes requests exactly-once, so two processes must
	// never share one. Default: 16 random bytes in hex.
	ClientID string
	// DialTimeout bounds connecting to one server, handshake included.
	DialTimeout time.Duration
	// RequestTimeout bounds one attempt of a request; a request without an
	// answer by then is retried on a new connection.
	RequestTimeout time.Duration
	// FailoverTimeout is how long a request keeps looking for a primary
	// after a failure before it gives up with ErrFailoverTimeout.
	FailoverTimeout time.Duration
	// KeepAlive is the interval of the pings Listen sends on an otherwise
	// idle connection, which also detect a server that vanished silently.
	KeepAlive time.Duration
	// MaxFrame is the largest frame body read or written; 0 means
	// wire.DefaultMaxFrame. The server's hello may lower it.
	MaxFrame uint32
	// TLS, when set, makes every connection a TLS client connection.
	TLS *tls.Config
	// Logger receives failover events at debug and info level; nil
	// discards them.
	Logger *slog.Logger
}

// withDefaults returns cfg with defaults filled in, or an error for a
// configuration that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Servers) == 0 {
		return cfg, ErrNoServers
	}
	cfg.Servers = append([]string(nil), cfg.Servers...)
	for _, addr := range cfg.Servers {
		if err := CheckAddr(addr); err != nil {
			return cfg, fmt.Errorf("%w: %w", ErrBadServer, err)
		}
	}
	if cfg.ClientID == "" {
		var b [16]byte
		// crypto/rand.Read never fails (Go 1.24+); it panics instead.
		_, _ = rand.Read(b[:])
		cfg.ClientID = hex.EncodeToString(b[:])
	}
	if len(cfg.ClientID) > wire.MaxClientIDLen {
		return cfg, fmt.Errorf("client: ClientID of %d bytes exceeds %d", len(cfg.ClientID), wire.MaxClientIDLen)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&cfg.DialTimeout, DefaultDialTimeout},
		{&cfg.RequestTimeout, DefaultRequestTimeout},
		{&cfg.FailoverTimeout, DefaultFailoverTimeout},
		{&cfg.KeepAlive, DefaultKeepAlive},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return cfg, fmt.Errorf("client: negative timeout %v", *d.v)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// CheckAddr reports whether addr is a server address the client can dial:
// host:port with a host and a port number, so that a typo fails at once
// rather than after the failover timeout.
func CheckAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
		return fmt.Errorf("%q is not host:port (%s)", addr, ae.Err)
	} else if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, port)
	}
	return nil
}
