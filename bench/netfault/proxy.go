package netfault

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Client stands for the client side of a client link in a Link: Link{Client,
// j} is what clients send to replica j, Link{j, Client} what j answers them.
const Client = -1

// Link is one direction of traffic: the bytes that flow From -> To, on every
// connection between the two. From and To are replica ids, or Client.
type Link struct{ From, To int }

// String returns "0->1", or "client->2" and "2->client" for client links.
func (l Link) String() string { return endName(l.From) + "->" + endName(l.To) }

func endName(id int) string {
	if id == Client {
		return "client"
	}
	return strconv.Itoa(id)
}

// Defaults for the zero values of Config fields.
const (
	DefaultClassifyTimeout = time.Second
	DefaultDialTimeout     = 2 * time.Second
)

// helloTimeout bounds the rest of a preamble once its first byte has arrived
// (a replica writes Magic and its hello in one write).
const helloTimeout = 5 * time.Second

// bufSize is the most bytes a direction reads before forwarding them.
const bufSize = 32 << 10

// Config configures a Proxy.
type Config struct {
	// Targets are the replicas' real addresses, by id (0, 1, ...).
	Targets []string
	// Listen are the addresses to listen on for each replica, by id; a
	// missing or empty entry means 127.0.0.1:0, a port chosen by the OS.
	Listen []string
	// Reset starts the proxy in reset mode (see SetReset).
	Reset bool
	// ClassifyTimeout is how long an accepted connection may stay silent
	// before it is taken for a client link (chat clients speak first, so
	// this matters only to odd clients). Default DefaultClassifyTimeout.
	ClassifyTimeout time.Duration
	// DialTimeout bounds the connection to a target. Default
	// DefaultDialTimeout.
	DialTimeout time.Duration
}

// LinkStats counts what happened on one directed link since the proxy
// started.
type LinkStats struct {
	// Conns are the connections opened on the link: dialed by From to To
	// (for a client link, Link{Client, j}: by clients to replica j).
	Conns int64
	// Bytes are the bytes forwarded From -> To, on any connection.
	Bytes int64
	// Held counts the times bytes that had been read had to wait for the
	// link to be restored: a non-zero count means a cut really held traffic.
	Held int64
	// Resets are the link's connections (as in Conns) closed by reset mode.
	Resets int64
}

// Proxy forwards the connections of a cluster and injects faults into
// them. See the package documentation.
type Proxy struct {
	cfg   Config
	lns   []net.Listener
	addrs []string
	// wg counts the accept goroutines and the connections' goroutines.
	wg sync.WaitGroup

	mu     sync.Mutex
	closed bool
	reset  bool
	// cut are the cut directed links between replicas; clientsCut the
	// replicas whose client links are cut, both ways.
	cut        map[Link]bool
	clientsCut map[int]bool
	// rate is the bytes per second a link is slowed to; absent: unlimited.
	rate map[Link]int
	// changed is closed, and replaced, at every change of the faults above
	// (and at Close), waking the directions that hold bytes.
	changed chan struct{}
	conns   map[*conn]struct{}
	stats   map[Link]*LinkStats
}

// New listens for every replica and starts forwarding. Close it when done.
func New(cfg Config) (*Proxy, error) {
	if len(cfg.Targets) == 0 {
		return nil, errors.New("netfault: no targets")
	}
	if cfg.ClassifyTimeout <= 0 {
		cfg.ClassifyTimeout = DefaultClassifyTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	cfg.Targets = slices.Clone(cfg.Targets)
	p := &Proxy{
		cfg:        cfg,
		reset:      cfg.Reset,
		cut:        make(map[Link]bool),
		clientsCut: make(map[int]bool),
		rate:       make(map[Link]int),
		changed:    make(chan struct{}),
		conns:      make(map[*conn]struct{}),
		stats:      make(map[Link]*LinkStats),
	}
	for j := range cfg.Targets {
		addr := "127.0.0.1:0"
		if j < len(cfg.Listen) && cfg.Listen[j] != "" {
			addr = cfg.Listen[j]
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, ln := range p.lns {
				ln.Close()
			}
			return nil, fmt.Errorf("netfault: listen for replica %d on %s: %w", j, addr, err)
		}
		p.lns = append(p.lns, ln)
		p.addrs = append(p.addrs, ln.Addr().String())
	}
	for j, ln := range p.lns {
		p.wg.Go(func() { p.accept(j, ln) })
	}
	return p, nil
}

// Replicas is the number of replicas the proxy stands in front of.
func (p *Proxy) Replicas() int { return len(p.cfg.Targets) }

// Addr is the proxy's address for replica id: what --peers and clients use.
func (p *Proxy) Addr(id int) string { return p.addrs[id] }

// Addrs are the proxy's addresses, by replica id.
func (p *Proxy) Addrs() []string { return slices.Clone(p.addrs) }

// Target is replica id's real address.
func (p *Proxy) Target(id int) string { return p.cfg.Targets[id] }

func (p *Proxy) checkID(id int) {
	if id < 0 || id >= len(p.cfg.Targets) {
		panic(fmt.Sprintf("netfault: replica id %d out of range [0, %d)", id, len(p.cfg.Targets)))
	}
}

func (p *Proxy) checkLink(l Link) {
	p.checkID(l.From)
	p.checkID(l.To)
	if l.From == l.To {
		panic(fmt.Sprintf("netfault: link %v from a replica to itself", l))
	}
}

// Cut stops the traffic from replica from to replica to (one direction).
func (p *Proxy) Cut(from, to int) { p.CutLinks(Link{from, to}) }

// Restore undoes Cut(from, to).
func (p *Proxy) Restore(from, to int) { p.RestoreLinks(Link{from, to}) }

// CutLinks cuts several directed links between replicas at once.
func (p *Proxy) CutLinks(links ...Link) {
	for _, l := range links {
		p.checkLink(l)
	}
	p.update(func() {
		for _, l := range links {
			p.cut[l] = true
		}
	})
}

// RestoreLinks restores several directed links between replicas at once.
func (p *Proxy) RestoreLinks(links ...Link) {
	for _, l := range links {
		p.checkLink(l)
	}
	p.update(func() {
		for _, l := range links {
			delete(p.cut, l)
		}
	})
}

// Partition cuts every link, both ways, between replicas of different
// groups; links within a group, and of replicas in no group, are left as
// they are. It adds to the links already cut: Heal first for a fresh
// partition.
func (p *Proxy) Partition(groups ...[]int) {
	var links []Link
	for gi, g := range groups {
		for gk, h := range groups {
			if gi == gk {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					links = append(links, Link{a, b})
				}
			}
		}
	}
	p.CutLinks(links...)
}

// Isolate cuts every link between replica id and the other replicas, both
// ways. Its client links are left as they are.
func (p *Proxy) Isolate(id int) {
	p.checkID(id)
	var others []int
	for j := range p.cfg.Targets {
		if j != id {
			others = append(others, j)
		}
	}
	p.Partition([]int{id}, others)
}

// CutClients cuts the client links of replica id, both ways.
func (p *Proxy) CutClients(id int) {
	p.checkID(id)
	p.update(func() { p.clientsCut[id] = true })
}

// RestoreClients undoes CutClients(id).
func (p *Proxy) RestoreClients(id int) {
	p.checkID(id)
	p.update(func() { delete(p.clientsCut, id) })
}

// SetRate slows the traffic from replica from to replica to down to about
// bytesPerSecond (0: unlimited).
func (p *Proxy) SetRate(from, to, bytesPerSecond int) {
	l := Link{from, to}
	p.checkLink(l)
	p.update(func() {
		if bytesPerSecond <= 0 {
			delete(p.rate, l)
		} else {
			p.rate[l] = bytesPerSecond
		}
	})
}

// SetReset switches reset mode. In reset mode a cut link closes its
// connections (those with a direction on it, at once, and those that arrive
// later) instead of holding their bytes. Switching it on while links are cut
// closes their held connections.
func (p *Proxy) SetReset(on bool) { p.update(func() { p.reset = on }) }

// Heal restores every link (peer and client) and removes every rate limit.
// Held bytes are forwarded, in order. Reset mode is left as it is.
func (p *Proxy) Heal() {
	p.update(func() {
		clear(p.cut)
		clear(p.clientsCut)
		clear(p.rate)
	})
}

// IsCut reports whether the link From -> To is cut (a client link when one
// end is Client).
func (p *Proxy) IsCut(l Link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.isCutLocked(l)
}

// Cuts lists the links cut now, in order: replica links, then client links
// (each cut client link as both of its directions).
func (p *Proxy) Cuts() []Link {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Link
	for l := range p.cut {
		out = append(out, l)
	}
	for j := range p.clientsCut {
		out = append(out, Link{Client, j}, Link{j, Client})
	}
	slices.SortFunc(out, func(a, b Link) int {
		if a.From != b.From {
			return a.From - b.From
		}
		return a.To - b.To
	})
	return out
}

// Stats returns a copy of every link's counters.
func (p *Proxy) Stats() map[Link]LinkStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Link]LinkStats, len(p.stats))
	for l, s := range p.stats {
		out[l] = *s
	}
	return out
}

// Close stops listening, closes every proxied connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.notifyLocked()
	p.mu.Unlock()
	for _, ln := range p.lns {
		ln.Close()
	}
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
	return nil
}

// update applies a change of the faults, wakes the held directions, and in
// reset mode closes the connections it cut.
func (p *Proxy) update(change func()) {
	p.mu.Lock()
	change()
	var doomed []*conn
	if p.reset {
		for c := range p.conns {
			if p.doomedLocked(c) {
				doomed = append(doomed, c)
			}
		}
	}
	p.notifyLocked()
	p.mu.Unlock()
	for _, c := range doomed {
		c.close()
	}
}

// doomedLocked reports whether reset mode must close c, and counts it.
func (p *Proxy) doomedLocked(c *conn) bool {
	if !c.classified || !(p.isCutLocked(c.fwd) || p.isCutLocked(c.rev)) {
		return false
	}
	if !c.reset {
		c.reset = true
		p.statsLocked(c.fwd).Resets++
	}
	return true
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) isCutLocked(l Link) bool {
	switch {
	case l.From == Client:
		return p.clientsCut[l.To]
	case l.To == Client:
		return p.clientsCut[l.From]
	}
	return p.cut[l]
}

func (p *Proxy) statsLocked(l Link) *LinkStats {
	s := p.stats[l]
	if s == nil {
		s = &LinkStats{}
		p.stats[l] = s
	}
	return s
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// accept serves replica j's listener until Close.
func (p *Proxy) accept(j int, ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if p.isClosed() {
				return
			}
			// A transient failure (out of file descriptors): try again soon.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c := &conn{p: p, replica: j, a: nc, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			nc.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		// This goroutine is counted in wg, so wg is not zero here.
		p.wg.Go(c.run)
	}
}

// conn is one proxied connection: a, accepted from the dialer, and b,
// dialed to the replica.
type conn struct {
	p       *Proxy
	replica int // the replica whose listener accepted it
	a       net.Conn
	done    chan struct{} // closed by close

	// Set once, under p.mu, when the connection is classified. fwd is the
	// dialer -> replica direction, rev the other.
	classified bool
	fwd, rev   Link
	reset      bool // closed by reset mode (counted); under p.mu

	mu     sync.Mutex
	closed bool
	b      net.Conn
}

// close closes both sides, once; blocked reads and writes return.
func (c *conn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	b := c.b
	close(c.done)
	c.mu.Unlock()
	c.a.Close()
	if b != nil {
		b.Close()
	}
}

// setB records the dialed side; false if the connection is already closed
// (b is then closed).
func (c *conn) setB(b net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		b.Close()
		return false
	}
	c.b = b
	return true
}

// run classifies the connection, waits for its link, dials the replica and
// forwards both directions until they end.
func (c *conn) run() {
	p := c.p
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	peeked, from, err := classify(c.a, p.cfg.ClassifyTimeout)
	if err != nil {
		return
	}
	p.mu.Lock()
	c.fwd, c.rev = Link{from, c.replica}, Link{c.replica, from}
	c.classified = true
	p.statsLocked(c.fwd).Conns++
	doomed := p.reset && p.doomedLocked(c)
	p.mu.Unlock()
	if doomed {
		return
	}
	// Dial only once the link lets the dialer's first bytes through, as a
	// SYN across a partition gets no answer.
	if _, ok := p.waitOpen(c, c.fwd); !ok {
		return
	}
	b, err := net.DialTimeout("tcp", p.cfg.Targets[c.replica], p.cfg.DialTimeout)
	if err != nil {
		return
	}
	if !c.setB(b) {
		return
	}
	if len(peeked) > 0 && !c.forward(b, c.fwd, peeked) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.pump(c.a, b, c.rev) })
	c.pump(b, c.a, c.fwd)
	wg.Wait()
}

// pump forwards src to dst on link l until src ends (then half-closes dst)
// or either side fails (then closes the connection).
func (c *conn) pump(dst, src net.Conn, l Link) {
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.forward(dst, l, buf[:n]) {
			c.close()
			return
		}
		if errors.Is(err, io.EOF) {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return
		}
		if err != nil {
			c.close()
			return
		}
	}
}

// forward writes b to dst once link l allows it, at its rate; false if the
// connection ended meanwhile.
func (c *conn) forward(dst net.Conn, l Link, b []byte) bool {
	for len(b) > 0 {
		rate, ok := c.p.waitOpen(c, l)
		if !ok {
			return false
		}
		n := len(b)
		if rate > 0 {
			// Pieces of about 20ms each, so that a cut between them bites.
			n = min(n, max(rate/50, 1))
		}
		w, err := dst.Write(b[:n])
		c.p.mu.Lock()
		c.p.statsLocked(l).Bytes += int64(w)
		c.p.mu.Unlock()
		if err != nil {
			return false
		}
		b = b[n:]
		if rate > 0 {
			t := time.NewTimer(time.Duration(n) * time.Second / time.Duration(rate))
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
				return false
			}
		}
	}
	return true
}

// waitOpen blocks while link l is cut, and returns its rate once it is not;
// false if the connection or the proxy closed meanwhile (reset mode closes
// the connection here).
func (p *Proxy) waitOpen(c *conn, l Link) (rate int, ok bool) {
	held := false
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return 0, false
		}
		if !p.isCutLocked(l) {
			rate := p.rate[l]
			p.mu.Unlock()
			return rate, true
		}
		if p.reset {
			p.doomedLocked(c)
			p.mu.Unlock()
			c.close()
			return 0, false
		}
		if !held {
			held = true
			p.statsLocked(l).Held++
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-c.done:
			return 0, false
		}
	}
}
