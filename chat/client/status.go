package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/replichat/replichat/chat/wire"
)

// surveyTimeout bounds the status round that explains an outage (see
// UnavailableError): the caller is waiting for the error, so a replica that
// does not answer by then is reported as down.
const surveyTimeout = 2 * time.Second

// statusAnswer is one server's answer to status, or why there is none.
type statusAnswer struct {
	addr     string
	hello    wire.HelloOK
	replicas []wire.ReplicaStatus
	err      error
}

// Status asks every server of Config.Servers, in parallel, for the cluster
// as it sees it, then every replica those answers name that is not among
// them, and merges the answers into one entry per replica, by id:
//
//   - a replica that answers describes itself (its own entry in its
//     answer: role, epoch, log end, commit, waiting); its InSync is the
//     serving primary's word when a primary answers (the primary owns the
//     in-sync set), else its own;
//   - a replica that does not answer is RoleDown with its id and address
//     only: no numbers from another replica's view, which may be stale or
//     (a backup's view of its peers) not known at all. Its Waiting says why
//     it is down as this client saw it ("connection refused").
//
// When no server answers, the ids of the down entries are the servers'
// positions in Config.Servers. Status needs no primary and no login; the
// error is non-nil only if ctx ends or the client is closed.
func (c *Client) Status(ctx context.Context) ([]wire.ReplicaStatus, error) {
	ctx, release := c.opContext(ctx)
	defer release()
	st, err := c.survey(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

// survey is Status. With strict, its error is ctx's if ctx ends before the
// configured servers answered; otherwise, and in the second round, a
// replica that has not answered by the time ctx ends is down ("no answer
// in time").
func (c *Client) survey(ctx context.Context, strict bool) ([]wire.ReplicaStatus, error) {
	answers := c.askAll(ctx, c.cfg.Servers)
	if strict && ctx.Err() != nil {
		return nil, ctxErr(ctx)
	}
	// A second round for the replicas the answers name that the client was
	// not configured with: what they say of themselves beats a peer's view.
	known := make(map[string]bool, len(answers))
	for _, a := range answers {
		known[a.addr] = true
	}
	var more []string
	for _, a := range answers {
		for _, r := range a.replicas {
			if r.Addr != "" && !known[r.Addr] {
				known[r.Addr] = true
				more = append(more, r.Addr)
			}
		}
	}
	if len(more) > 0 {
		// (After ctx ended they fail at once, and show as down.)
		answers = append(answers, c.askAll(ctx, more)...)
	}
	return mergeStatus(answers, len(c.cfg.Servers)), nil
}

// askAll asks each of addrs for its status, in parallel.
func (c *Client) askAll(ctx context.Context, addrs []string) []statusAnswer {
	answers := make([]statusAnswer, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() { answers[i] = c.askStatus(ctx, addr) })
	}
	wg.Wait()
	return answers
}

// askStatus asks one server for its status on a connection of its own.
func (c *Client) askStatus(ctx context.Context, addr string) statusAnswer {
	a := statusAnswer{addr: addr}
	cn, err := dialConn(ctx, addr, &c.cfg)
	if err != nil {
		a.err = err
		return a
	}
	if err := c.start(cn); err != nil {
		a.err = err
		return a
	}
	defer cn.close()
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	f, err := cn.roundTrip(actx, wire.OpStatus, 0, wire.StatusRequest{})
	if err == nil {
		var resp wire.StatusResponse
		if err = wire.Decode(f.Body, &resp); err == nil {
			a.hello, a.replicas = cn.hello, resp.Replicas
		}
	}
	a.err = err
	return a
}

// mergeStatus merges the answers of Status (see there); the first
// configured of them are the configured servers.
func mergeStatus(answers []statusAnswer, configured int) []wire.ReplicaStatus {
	var views []statusAnswer
	for _, a := range answers {
		if a.err == nil {
			views = append(views, a)
		}
	}
	// The primary of the highest epoch that answered owns the in-sync set.
	var primary *statusAnswer
	for i := range views {
		v := &views[i]
		if selfRole(*v) == wire.RolePrimary && (primary == nil || v.hello.Epoch > primary.hello.Epoch) {
			primary = v
		}
	}
	idOf := func(addr string) (uint32, bool) {
		for _, v := range views {
			for _, r := range v.replicas {
				if r.Addr == addr {
					return r.ID, true
				}
			}
		}
		return 0, false
	}

	byID := make(map[uint32]wire.ReplicaStatus)
	for _, v := range views {
		self, ok := selfEntry(v)
		if !ok {
			self = wire.ReplicaStatus{ID: v.hello.ServerID, Addr: v.addr, Epoch: v.hello.Epoch}
		}
		self.Role = selfRole(v)
		if self.Addr == "" {
			self.Addr = v.addr
		}
		if primary != nil {
			self.InSync = false
			for _, r := range primary.replicas {
				if r.ID == self.ID {
					self.InSync = r.InSync
				}
			}
		}
		byID[self.ID] = self
	}
	for i, a := range answers {
		if a.err == nil {
			continue
		}
		id, ok := idOf(a.addr)
		if !ok {
			if i >= configured {
				continue
			}
			id = uint32(i)
		}
		if _, answered := byID[id]; answered {
			continue // the same replica under another address, which answered
		}
		byID[id] = wire.ReplicaStatus{ID: id, Addr: a.addr, Role: wire.RoleDown, Waiting: downReason(a.err)}
	}
	out := make([]wire.ReplicaStatus, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b wire.ReplicaStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// selfEntry returns the answering replica's own entry in its answer.
func selfEntry(a statusAnswer) (wire.ReplicaStatus, bool) {
	for _, r := range a.replicas {
		if r.ID == a.hello.ServerID {
			return r, true
		}
	}
	return wire.ReplicaStatus{}, false
}

// selfRole is the answering replica's role: its status entry's, which is
// more recent than its hello's.
func selfRole(a statusAnswer) string {
	if r, ok := selfEntry(a); ok && (r.Role == wire.RolePrimary || r.Role == wire.RoleBackup) {
		return r.Role
	}
	return a.hello.Role
}

// downReason says in a few words why a replica did not answer: the system's
// reason for a refused or failed connection ("connection refused"), not
// the whole chain of wrapping.
func downReason(err error) string {
	var (
		se  *os.SyscallError
		dns *net.DNSError
		ne  net.Error
		we  *wire.Error
	)
	switch {
	case errors.As(err, &se):
		return se.Err.Error()
	case errors.As(err, &dns):
		return dns.Error()
	case errors.As(err, &we):
		return we.Message
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	}
	return err.Error()
}

// Serving reports whether st describes a primary that serves.
func Serving(st wire.ReplicaStatus) bool {
	return st.Role == wire.RolePrimary && st.Waiting == ""
}

// UnavailableError says why no primary serves, in the replicas' words: the
// status of each replica when the client gave up (or, for a long-lived
// Listen, when it reported the outage). It wraps the last failure seen, so
// errors.As still finds a server's *Error.
type UnavailableError struct {
	// Replicas is the cluster as Status saw it then.
	Replicas []wire.ReplicaStatus
	// Last is the last failure of the request, if any.
	Last error
}

// Error returns the replicas' reasons, those with the same one grouped:
// "replicas 0, 1: waiting to hear from replica 2; replica 2: down
// (connection refused)".
func (e *UnavailableError) Error() string {
	if len(e.Replicas) == 0 {
		if e.Last != nil {
			return e.Last.Error()
		}
		return "no primary"
	}
	var (
		reasons []string
		ids     = map[string][]uint32{}
	)
	for _, r := range e.Replicas {
		why := replicaReason(r)
		if _, ok := ids[why]; !ok {
			reasons = append(reasons, why)
		}
		ids[why] = append(ids[why], r.ID)
	}
	parts := make([]string, len(reasons))
	for i, why := range reasons {
		parts[i] = fmt.Sprintf("%s: %s", replicaNames(ids[why]), why)
	}
	s := strings.Join(parts, "; ")
	if slices.ContainsFunc(e.Replicas, Serving) && e.Last != nil {
		// A primary serves now: the replicas do not explain the failure.
		s += "; last error: " + e.Last.Error()
	}
	return s
}

// Unwrap returns the last failure.
func (e *UnavailableError) Unwrap() error { return e.Last }

// replicaReason is one replica's state in an UnavailableError.
func replicaReason(r wire.ReplicaStatus) string {
	switch {
	case r.Role == wire.RoleDown && r.Waiting != "":
		return "down (" + r.Waiting + ")"
	case r.Role == wire.RoleDown:
		return "down"
	case r.Waiting != "":
		return r.Waiting
	}
	return r.Role
}

func replicaNames(ids []uint32) string {
	if len(ids) == 1 {
		return fmt.Sprintf("replica %d", ids[0])
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return "replicas " + strings.Join(s, ", ")
}

// unavailable surveys the cluster, for at most surveyTimeout, to say why no
// primary could be reached; last is the request's last failure.
func (c *Client) unavailable(ctx context.Context, last error) *UnavailableError {
	sctx, cancel := context.WithTimeout(ctx, surveyTimeout)
	defer cancel()
	sctx, release := c.opContext(sctx)
	defer release()
	if ctx.Err() != nil {
		return &UnavailableError{Last: last}
	}
	st, _ := c.survey(sctx, false) // never fails when not strict
	return &UnavailableError{Replicas: st, Last: last}
}
