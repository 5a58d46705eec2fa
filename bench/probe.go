package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// probeTimeout bounds one probe exchange when the caller's context has no
// earlier deadline: a replica that does not answer within it counts as down.
const probeTimeout = 2 * time.Second

// probeConn is a raw protocol connection to one replica for the ops the
// client library does not expose per replica (status of one replica,
// metrics). It is used by one goroutine at a time.
type probeConn struct {
	addr   string
	conn   *wire.Conn
	hello  wire.HelloOK
	nextID uint64
}

// dialProbe connects to addr and says hello.
func dialProbe(ctx context.Context, addr, clientID string) (*probeConn, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := wire.NewConn(nc, 0)
	hello, err := conn.Handshake(ctx, wire.Hello{Role: wire.RoleClient, ClientID: clientID, Software: "replichat-chatbench"})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("hello %s: %w", addr, err)
	}
	return &probeConn{addr: addr, conn: conn, hello: hello, nextID: 1}, nil
}

// call sends one non-mutating request and decodes its response into resp,
// skipping pushes.
func (p *probeConn) call(ctx context.Context, op string, req, resp any) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	nc := p.conn.NetConn()
	nc.SetDeadline(deadline)
	defer nc.SetDeadline(time.Time{})
	// Cancellation, not only the deadline, must unblock the read.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	p.nextID++
	f, err := wire.NewRequest(p.nextID, op, 0, req)
	if err != nil {
		return fmt.Errorf("build %s request: %w", op, err)
	}
	if err := p.conn.WriteFrame(f); err != nil {
		return fmt.Errorf("write %s request to %s: %w", op, p.addr, errors.Join(err, ctx.Err()))
	}
	for {
		in, err := p.conn.ReadFrame()
		if err != nil {
			return fmt.Errorf("read %s response from %s: %w", op, p.addr, errors.Join(err, ctx.Err()))
		}
		if in.Kind != wire.KindResponse || in.ID != f.ID {
			continue
		}
		if in.Error != nil {
			return fmt.Errorf("%s on %s: %w", op, p.addr, in.Error)
		}
		if err := wire.Decode(in.Body, resp); err != nil {
			return fmt.Errorf("decode %s response from %s: %w", op, p.addr, err)
		}
		return nil
	}
}

func (p *probeConn) close() { p.conn.Close() }

// statusOf asks the replica at addr for the cluster as it sees it.
func statusOf(ctx context.Context, addr string) ([]wire.ReplicaStatus, error) {
	p, err := dialProbe(ctx, addr, "chatbench-status")
	if err != nil {
		return nil, err
	}
	defer p.close()
	var resp wire.StatusResponse
	if err := p.call(ctx, wire.OpStatus, wire.StatusRequest{}, &resp); err != nil {
		return nil, err
	}
	return resp.Replicas, nil
}

// entry returns replica id's entry in a status answer.
func entry(st []wire.ReplicaStatus, id int) (wire.ReplicaStatus, bool) {
	for _, r := range st {
		if int(r.ID) == id {
			return r, true
		}
	}
	return wire.ReplicaStatus{}, false
}

// findPrimary asks every replica for a hello until one answers as primary,
// and returns its index in addrs. skip (-1 for none) is a replica known to be
// dead, whose address is not tried.
func findPrimary(ctx context.Context, addrs []string, skip int, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		for i, addr := range addrs {
			if i == skip {
				continue
			}
			p, err := dialProbe(ctx, addr, "chatbench-find")
			if err != nil {
				last = err
				continue
			}
			p.close()
			if p.hello.Role == wire.RolePrimary {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("%w within %v (last error: %v)", ErrNoPrimary, timeout, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// helloOK reports whether the replica at addr answers a hello.
func helloOK(ctx context.Context, addr string) bool {
	p, err := dialProbe(ctx, addr, "chatbench-hello")
	if err != nil {
		return false
	}
	p.close()
	return true
}

// pollEvery calls cond every interval until it returns true, an error, or
// ctx ends.
func pollEvery(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
