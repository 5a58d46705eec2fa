package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Inbound is a message received from a peer.
type Inbound struct {
	From NodeID
	Msg  []byte // owned by the receiver
	// Received is when the message was read off the connection: a receiver
	// that is busy may step it much later, and what it measures (e.g. the
	// time a backup acknowledged a write) should not include that wait.
	Received time.Time
}

// PeerStatus describes the link with one peer, as seen from this replica.
type PeerStatus struct {
	ID   NodeID
	Addr string
	// Connected: our outbound connection to the peer is authenticated and up.
	Connected bool
	// Inbound: an authenticated connection from the peer is open.
	Inbound bool
	// LastError is the last reason the outbound link failed or broke, nil
	// if it never did; LastErrorAt is when.
	LastError   error
	LastErrorAt time.Time
	// Queued is the number of messages waiting in the peer's queue.
	Queued int
	// Counters since New. Sent counts what was flushed to the connection;
	// Dropped counts messages Send refused.
	SentMessages, SentBytes uint64
	RecvMessages, RecvBytes uint64
	Dropped                 uint64
}

// Transport is the link from this replica to its peers. Its methods are safe
// for concurrent use.
type Transport struct {
	cfg   Config
	log   *slog.Logger
	hs    handshaker
	peers map[NodeID]*peer // every replica but self; immutable after New
	ids   []NodeID         // keys of peers, sorted
	inbox chan Inbound

	started atomic.Bool   // Run was called
	closed  chan struct{} // closed when Run stops; then Send drops and Accept refuses

	mu sync.Mutex
	// conns holds every connection Accept is serving, so that stopping can
	// close them. Invariant: nil once closed is closed.
	conns map[net.Conn]struct{}
}

// New validates cfg and returns a Transport. Messages can be sent (queued)
// and connections accepted before Run, but nothing is dialled until Run.
func New(cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Transport{
		cfg:    cfg,
		log:    cfg.Logger.With("node", cfg.Self),
		peers:  make(map[NodeID]*peer, len(cfg.Peers)-1),
		inbox:  make(chan Inbound, cfg.InboxLen),
		closed: make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	for id, addr := range cfg.Peers {
		if id == cfg.Self {
			continue
		}
		t.peers[id] = newPeer(id, addr, cfg.QueueLen)
		t.ids = append(t.ids, id)
	}
	slices.Sort(t.ids)
	t.hs = handshaker{
		self:   cfg.Self,
		secret: cfg.Secret,
		known: func(id NodeID) bool {
			_, ok := t.peers[id]
			return ok
		},
	}
	return t, nil
}

// Run dials every peer and writes their queues until ctx is done, then
// closes every connection, waits until all its goroutines (and those of
// Accept) have stopped and returns nil. The Transport cannot be restarted:
// a second call returns ErrClosed.
func (t *Transport) Run(ctx context.Context) error {
	if t.started.Swap(true) {
		return fmt.Errorf("run transport: %w", ErrClosed)
	}
	var wg sync.WaitGroup
	for _, id := range t.ids {
		p := t.peers[id]
		wg.Go(func() { t.runPeer(ctx, p) })
	}
	<-ctx.Done()
	t.mu.Lock()
	close(t.closed)
	for c := range t.conns {
		c.Close()
	}
	t.conns = nil
	t.mu.Unlock()
	wg.Wait()
	return nil
}

// Send queues msg for peer to and returns at once. It returns false, and
// the message is dropped, if to is not a peer (self included), msg is
// longer than MaxMessage, the peer's queue is full (typically because the
// peer is down) or the transport has stopped. A true result is no promise
// of delivery: a message is lost if the connection breaks. msg belongs to
// the transport from then on; the caller must not modify it.
func (t *Transport) Send(to NodeID, msg []byte) bool {
	p, ok := t.peers[to]
	if !ok {
		return false
	}
	select {
	case <-t.closed:
		p.dropped.Add(1)
		return false
	default:
	}
	if len(msg) > t.cfg.MaxMessage {
		p.dropped.Add(1)
		return false
	}
	select {
	case p.queue <- msg:
		return true
	default:
		p.dropped.Add(1)
		return false
	}
}

// Inbox returns the channel of messages received from all peers. Messages
// from one peer arrive in the order it sent them. The channel is never
// closed; stop reading when the Transport's context is done.
func (t *Transport) Inbox() <-chan Inbound { return t.inbox }

// Accept serves conn, a connection that starts with Magic, until it
// breaks, ctx is done, the transport stops, or the same peer connects
// again. r holds what the caller already buffered from conn (for example
// the bufio.Reader given to IsPeer), followed by the rest of conn; nil
// means conn itself. Accept runs the handshake, then reads messages into
// the Inbox, waiting while the Inbox is full. It closes conn before
// returning and always returns a non-nil error, which says why it
// stopped (ctx.Err() if ctx is done).
func (t *Transport) Accept(ctx context.Context, conn net.Conn, r io.Reader) error {
	defer conn.Close()
	if !t.track(conn) {
		return fmt.Errorf("accept %s: %w", conn.RemoteAddr(), ErrClosed)
	}
	defer t.untrack(conn)
	// Reads block in the kernel, not on ctx: closing conn unblocks them.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if r == nil {
		r = conn
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	from, err := t.acceptHandshake(conn, br)
	if err != nil {
		err = t.stopReason(ctx, conn, err)
		if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrClosed) {
			t.log.Warn("refused peer connection", "remote", conn.RemoteAddr().String(), "err", err)
		}
		return fmt.Errorf("accept %s: %w", conn.RemoteAddr(), err)
	}
	p := t.peers[from]
	log := t.log.With("peer", from, "remote", conn.RemoteAddr().String())
	if old := p.setInbound(conn); old != nil {
		log.Info("peer reconnected; closing its previous connection")
		old.Close()
	}
	log.Info("peer connected")
	if !p.connected.Load() {
		p.wakeWriter()
	}
	err = t.readLoop(ctx, p, br)
	superseded := p.clearInbound(conn)
	if superseded {
		err = ErrSuperseded
	} else {
		err = t.stopReason(ctx, conn, err)
	}
	log.Info("peer connection closed", "err", err)
	return fmt.Errorf("serve peer %d: %w", from, err)
}

func (t *Transport) acceptHandshake(conn net.Conn, r io.Reader) (NodeID, error) {
	if err := conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		return 0, fmt.Errorf("set handshake deadline: %w", err)
	}
	from, err := t.hs.accept(r, conn)
	if err != nil {
		return 0, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return 0, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return from, nil
}

// readLoop moves messages from one authenticated inbound connection into
// the Inbox until reading fails or delivery is stopped.
func (t *Transport) readLoop(ctx context.Context, p *peer, r io.Reader) error {
	fr := frameReader{r: r}
	for {
		msg, err := fr.read(t.cfg.MaxMessage)
		if err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		p.recvMsgs.Add(1)
		p.recvBytes.Add(uint64(len(msg)))
		select {
		case t.inbox <- Inbound{From: p.id, Msg: msg, Received: time.Now()}:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.closed:
			return ErrClosed
		}
	}
}

// stopReason prefers the cause of a stop over the I/O error it produced:
// our own closing of conn shows up as a read error.
func (t *Transport) stopReason(ctx context.Context, conn net.Conn, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	select {
	case <-t.closed:
		return ErrClosed
	default:
	}
	return err
}

// track registers an accepted connection; false if the transport stopped.
func (t *Transport) track(conn net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return false
	}
	t.conns[conn] = struct{}{}
	return true
}

func (t *Transport) untrack(conn net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, conn)
}

// Peers reports the state of the link with every peer, sorted by id.
func (t *Transport) Peers() []PeerStatus {
	out := make([]PeerStatus, 0, len(t.ids))
	for _, id := range t.ids {
		out = append(out, t.peers[id].status())
	}
	return out
}
