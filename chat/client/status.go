package client

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/replichat/replichat/chat/wire"
)

// statusAnswer is one server's answer to status, or why there is none.
type statusAnswer struct {
	addr     string
	hello    wire.HelloOK
	replicas []wire.ReplicaStatus
	err      error
}

// Status asks every server of Config.Servers, in parallel, for the cluster
// as it sees it, and merges the answers into one entry per replica, by id:
//
//   - a server that answers describes itself (its own entry in its answer);
//   - a configured server that does not answer is RoleDown, with its id and
//     the rest of its entry from the others' answers (the primary's first);
//   - a replica that is not configured comes from the answers as they are.
//
// When no server answers, the entries are all RoleDown and their ids are
// the servers' positions in Config.Servers. Status needs no primary and no
// login; the error is non-nil only if ctx ends or the client is closed.
func (c *Client) Status(ctx context.Context) ([]wire.ReplicaStatus, error) {
	ctx, release := c.opContext(ctx)
	defer release()
	answers := make([]statusAnswer, len(c.cfg.Servers))
	var wg sync.WaitGroup
	for i, addr := range c.cfg.Servers {
		wg.Go(func() { answers[i] = c.askStatus(ctx, addr) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("status: %w", ctxErr(ctx))
	}
	return mergeStatus(answers), nil
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

// mergeStatus merges the answers of Status; see there.
func mergeStatus(answers []statusAnswer) []wire.ReplicaStatus {
	// Views from the primaries first: they know the in-sync set best.
	views := make([]statusAnswer, 0, len(answers))
	for _, a := range answers {
		if a.err == nil {
			views = append(views, a)
		}
	}
	slices.SortStableFunc(views, func(a, b statusAnswer) int {
		return cmp.Compare(rolePriority(a.hello.Role), rolePriority(b.hello.Role))
	})
	lookup := func(match func(wire.ReplicaStatus) bool) (wire.ReplicaStatus, bool) {
		for _, v := range views {
			for _, r := range v.replicas {
				if match(r) {
					return r, true
				}
			}
		}
		return wire.ReplicaStatus{}, false
	}

	byID := make(map[uint32]wire.ReplicaStatus)
	for i, a := range answers {
		if a.err == nil {
			self, ok := lookup(func(r wire.ReplicaStatus) bool { return r.ID == a.hello.ServerID })
			for _, r := range a.replicas {
				if r.ID == a.hello.ServerID {
					self, ok = r, true // its own word about itself wins
				}
			}
			if !ok {
				self = wire.ReplicaStatus{ID: a.hello.ServerID, Addr: a.addr, Epoch: a.hello.Epoch}
			}
			self.Role = a.hello.Role
			if self.Addr == "" {
				self.Addr = a.addr
			}
			byID[self.ID] = self
			continue
		}
		r, ok := lookup(func(r wire.ReplicaStatus) bool { return r.Addr == a.addr })
		if !ok {
			r = wire.ReplicaStatus{ID: uint32(i), Addr: a.addr}
		}
		if _, answered := byID[r.ID]; answered {
			continue // the same replica under another address, which answered
		}
		r.Role = wire.RoleDown
		byID[r.ID] = r
	}
	for _, v := range views {
		for _, r := range v.replicas {
			if _, ok := byID[r.ID]; !ok {
				byID[r.ID] = r
			}
		}
	}
	out := make([]wire.ReplicaStatus, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b wire.ReplicaStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func rolePriority(role string) int {
	switch role {
	case wire.RolePrimary:
		return 0
	case wire.RoleBackup:
		return 1
	}
	return 2
}
