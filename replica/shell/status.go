package shell

import (
	"sort"

	"github.com/replichat/replichat/replica"
)

// Role names, as the wire protocol spells them.
const (
	RolePrimary   = "primary"
	RoleBackup    = "backup"
	RoleCandidate = "candidate"
	RoleDown      = "down"
)

// Status is a snapshot of the replica, published after every loop
// iteration.
type Status struct {
	ID          replica.NodeID
	Role        string // RolePrimary, RoleBackup or RoleCandidate
	Epoch       uint64
	Primary     replica.NodeID // replica.None if unknown
	PrimaryAddr string
	LogEnd      uint64
	Commit      uint64
	ISR         []replica.NodeID
	Recovering  bool
	// Waiting says why the replica neither leads nor follows, "" otherwise.
	Waiting string
	// Replicas is the cluster as this replica sees it, by id; this one
	// included.
	Replicas []ReplicaStatus
}

// ReplicaStatus is one replica as seen from this one.
type ReplicaStatus struct {
	ID      replica.NodeID
	Addr    string
	Role    string // RolePrimary, RoleBackup, RoleCandidate or RoleDown
	Epoch   uint64
	LogEnd  uint64 // for peers: what the primary knows replicated on them
	Commit  uint64
	InSync  bool
	Waiting string
}

func roleName(r replica.Role) string {
	switch r {
	case replica.RolePrimary:
		return RolePrimary
	case replica.RoleCandidate:
		return RoleCandidate
	}
	return RoleBackup
}

func (s *Shell) publish(st replica.Status) {
	out := &Status{
		ID:         st.ID,
		Role:       roleName(st.Role),
		Epoch:      uint64(st.Epoch),
		Primary:    st.Primary,
		LogEnd:     uint64(st.LogEnd),
		Commit:     uint64(st.Commit),
		ISR:        st.ISR,
		Recovering: st.Recovering,
		Waiting:    st.Waiting,
	}
	if st.Err != nil {
		out.Waiting = "stopped: " + st.Err.Error()
	}
	if st.Primary != replica.None {
		out.PrimaryAddr = s.cfg.Addrs[st.Primary]
	}
	inISR := make(map[replica.NodeID]bool, len(st.ISR))
	for _, id := range st.ISR {
		inISR[id] = true
	}
	out.Replicas = append(out.Replicas, ReplicaStatus{
		ID: st.ID, Addr: s.cfg.Addrs[st.ID], Role: out.Role, Epoch: out.Epoch,
		LogEnd: out.LogEnd, Commit: out.Commit, InSync: inISR[st.ID], Waiting: out.Waiting,
	})
	failover := s.cfg.Node.FailoverTicks
	for _, p := range st.Peers {
		rs := ReplicaStatus{ID: p.ID, Addr: s.cfg.Addrs[p.ID], Role: RoleBackup, Epoch: out.Epoch,
			LogEnd: uint64(p.Match), Commit: out.Commit, InSync: p.InSync}
		switch {
		case failover > 0 && p.HeardAgoTicks >= failover:
			rs.Role = RoleDown
		case p.ID == st.Primary:
			rs.Role = RolePrimary
		}
		if p.Recovering {
			rs.Waiting = "recovering after a restart"
		}
		out.Replicas = append(out.Replicas, rs)
	}
	sort.Slice(out.Replicas, func(i, j int) bool { return out.Replicas[i].ID < out.Replicas[j].ID })
	s.status.Store(out)
}
