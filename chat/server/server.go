package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/transport"
)

// Replicator makes records durable and applied. It is the seam between the
// chat front end and replication: a one-replica runtime and the replicated
// one both satisfy it.
type Replicator interface {
	// Propose appends recs (the replicator assigns Offset and Epoch; the
	// caller sets the rest) and returns once they are committed and applied
	// to the state machine, with the offset of the last one. It fails with
	// an error wrapping ErrNotPrimary or ErrUnavailable when this replica
	// cannot accept writes.
	Propose(ctx context.Context, recs []eventlog.Record) (eventlog.Offset, error)
	// Status describes this replica and, as far as it knows, the cluster.
	// It must be cheap: the server calls it on every hello and message id.
	Status() Status
}

// ReadBarrier is an optional capability of a Replicator: ReadBarrier returns
// nil once a read of the state made right after it is current (this
// replica is the primary, no other can have taken over, and every record
// committed before the call is applied), and otherwise an error wrapping
// ErrNotPrimary or ErrUnavailable (with the reason) or ctx's error.
type ReadBarrier interface {
	ReadBarrier(ctx context.Context) error
}

// Status is a replica's view of itself and of the cluster.
type Status struct {
	ID      uint32
	Role    string // wire.RolePrimary or wire.RoleBackup
	Epoch   uint64
	Primary string // address of the primary, "" if unknown
	// Waiting says why the replica does not serve, "" when it does.
	Waiting string
	// Replicas is one entry per replica of the cluster, this one included.
	Replicas []wire.ReplicaStatus
}

// Config configures a Server. State and Replicator are required.
type Config struct {
	State      *chat.State
	Replicator Replicator
	// Peer serves a connection that starts with the replica transport's
	// magic preamble; r holds bytes already read from conn. Nil refuses
	// peer connections (a one-replica cluster).
	Peer func(ctx context.Context, conn net.Conn, r io.Reader) error
	// TLS, if set, lets clients connect over TLS on the same port: a
	// connection whose first byte starts a TLS handshake is served through it.
	TLS *tls.Config

	MaxConns         int           // concurrent connections; default 1024
	MaxFrame         uint32        // largest frame body; default wire.DefaultMaxFrame
	HandshakeTimeout time.Duration // to receive the hello; default 5s
	IdleTimeout      time.Duration // between frames; default 60s (clients ping every 15s)
	WriteTimeout     time.Duration // per frame written; default 10s
	RequestTimeout   time.Duration // for one request to commit; default 15s
	// PushWindow bounds pushed but unacknowledged messages per session.
	PushWindow int // default 128
	// LoginFailures failed logins per name within LoginWindow lock the name
	// out for the rest of the window. Defaults 5 and 1 minute.
	LoginFailures int
	LoginWindow   time.Duration
	// Argon are the password hashing costs; zero means chat's defaults.
	Argon chat.ArgonParams
	// AfterCommit, if set, runs after a mutating request's events are
	// committed and applied and before the reply is sent: a failpoint for
	// tests that crash a primary exactly there.
	AfterCommit func(op string)
	// ObserveRequest, if set, gets every request answered (see observe.go).
	ObserveRequest func(op string, code wire.Code, took time.Duration)
	// Now is the wall clock (tests replace it). Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.State == nil || c.Replicator == nil {
		return errors.New("server: config needs State and Replicator")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 1024
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	def(&c.HandshakeTimeout, 5*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.RequestTimeout, 15*time.Second)
	def(&c.LoginWindow, time.Minute)
	if c.PushWindow <= 0 {
		c.PushWindow = 128
	}
	if c.LoginFailures <= 0 {
		c.LoginFailures = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server serves chat clients (and hands peer connections to Config.Peer).
type Server struct {
	cfg     Config
	state   *chat.State
	repl    Replicator
	logger  *slog.Logger
	limiter *loginLimiter
	// seqs lets mutate skip the dedup lookup of requests known to be new.
	seqs seqTracker
	// results carries applied results to the requests waiting for them.
	results resultWaiters
	// hashSlots bounds concurrent password hashing (see hashSlot).
	hashSlots chan struct{}
	// watchedPrimary is the role the step-down watcher last saw.
	watchedPrimary atomic.Bool

	// mu guards the fields below it.
	mu sync.Mutex
	// conns is every open connection, so that shutdown can close them.
	conns map[net.Conn]struct{}
	// clients are the connections serving chat clients (not peers): closed
	// when this replica steps down, so their clients find the new primary.
	clients map[net.Conn]struct{}
	// listening maps a user id to its listening sessions: the user's
	// presence. Invariant: no entry holds an empty set.
	listening map[uint64]map[*pusher]struct{}
}

// New returns a Server. Use StateMachine to apply records, so that pushes
// follow what is applied.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Server{
		cfg:       cfg,
		state:     cfg.State,
		repl:      cfg.Replicator,
		logger:    cfg.Logger,
		limiter:   newLoginLimiter(cfg.LoginFailures, cfg.LoginWindow),
		conns:     make(map[net.Conn]struct{}),
		clients:   make(map[net.Conn]struct{}),
		hashSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		listening: make(map[uint64]map[*pusher]struct{}),
	}, nil
}

// Serve accepts connections on ln until ctx is done, then closes ln and every
// connection and returns once all of its goroutines have exited. It returns
// nil after a cancellation and the accept error otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		s.closeAll()
	})
	wg.Go(func() { s.watchStepDown(ctx) })
	defer wg.Wait()
	var tempDelay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off, as net/http does.
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.logger.Warn("accept", "err", err, "retry_in", tempDelay)
				select {
				case <-time.After(tempDelay):
				case <-ctx.Done():
				}
				continue
			}
			cancel()
			return fmt.Errorf("accept: %w", err)
		}
		tempDelay = 0
		if !s.track(conn) {
			// Over the limit: answer so the client knows, then drop.
			wg.Go(func() { s.refuse(conn) })
			continue
		}
		wg.Go(func() {
			defer s.untrack(conn)
			s.serveConn(ctx, conn)
		})
	}
}

func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) >= s.cfg.MaxConns {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	conn.Close()
}

// stepDownPoll is how often the server checks whether it lost the primary
// role. Clients on a deposed primary get not_primary on their next request
// anyway; closing their connections also moves idle listeners promptly.
const stepDownPoll = 50 * time.Millisecond

func (s *Server) watchStepDown(ctx context.Context) {
	t := time.NewTicker(stepDownPoll)
	defer t.Stop()
	wasPrimary := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		primary := s.repl.Status().Role == wire.RolePrimary
		s.watchedPrimary.Store(primary)
		if wasPrimary && !primary {
			s.logger.Info("no longer the primary; closing client connections")
			s.mu.Lock()
			for c := range s.clients {
				c.Close()
			}
			s.mu.Unlock()
		}
		wasPrimary = primary
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// refuse tells a client over the connection limit why it is dropped. It
// reads the hello first so that the error answers a request id.
func (s *Server) refuse(conn net.Conn) {
	defer conn.Close()
	wc := wire.NewConn(conn, s.cfg.MaxFrame)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	defer cancel()
	req, _, err := wc.AcceptHello(ctx)
	if err != nil {
		return
	}
	conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	wc.WriteFrame(wire.NewErrorResponse(req, wire.Errorf(wire.CodeTooManyConnections,
		"the server has %d connections, its limit", s.cfg.MaxConns)))
}

// tlsRecordHandshake is the first byte of a TLS connection (a handshake
// record). A wire frame starts with the high byte of its length, which is 0
// for every allowed size, and a peer link with transport.Magic, so one byte
// tells the three apart.
const tlsRecordHandshake = 0x16

// serveConn routes a new connection by its first bytes.
func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	log := s.logger.With("remote", conn.RemoteAddr().String())
	conn.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	br := bufio.NewReader(conn)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == tlsRecordHandshake && s.cfg.TLS != nil {
		defer s.clientConn(conn)()
		tc := tls.Server(&prefixConn{Conn: conn, r: br}, s.cfg.TLS)
		hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			log.Debug("tls handshake", "err", err)
			return
		}
		s.serveClient(ctx, tc, log)
		return
	}
	peer, err := transport.IsPeer(br)
	if err != nil {
		return
	}
	if peer {
		if s.cfg.Peer == nil {
			log.Warn("refused a replica peer connection: this replica has no peers configured")
			return
		}
		conn.SetReadDeadline(time.Time{})
		if err := s.cfg.Peer(ctx, conn, br); err != nil && ctx.Err() == nil {
			log.Debug("peer connection ended", "err", err)
		}
		return
	}
	defer s.clientConn(conn)()
	s.serveClient(ctx, &prefixConn{Conn: conn, r: br}, log)
}

// clientConn marks conn as a client connection for its lifetime.
func (s *Server) clientConn(conn net.Conn) func() {
	s.mu.Lock()
	s.clients[conn] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.clients, conn)
		s.mu.Unlock()
	}
}

// prefixConn is a net.Conn whose reads come first from bytes already
// buffered while routing the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// env returns the non-deterministic inputs of the decision of request
// (clientID, seq). The message id is not one of them: it is
// chat.MessageID(clientID, seq), so that every primary that decides the
// request (a retry on both sides of a forked log) assigns it the same id,
// and the id a client is acknowledged with is the one every replica keeps.
func (s *Server) env(clientID string, seq uint64) chat.Env {
	return chat.Env{
		Now:          s.cfg.Now().UnixNano(),
		NewMessageID: func() uint64 { return chat.MessageID(clientID, seq) },
		Rand:         rand.Reader,
		Argon:        s.cfg.Argon,
	}
}
