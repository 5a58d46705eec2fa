package shell

import (
	"sort"
	"time"

	"github.com/replichat/replichat/replica"
)

// Role names, as the wire protocol spells them.
const (
	RolePrimary   = "primary"
	RoleBackup    = "backup"
	RoleCandidate = "candidate"
	RoleDown      = "down"
	// RoleFailed: the replica runs but its core stopped (its log could not
	// be read: corrupt); it is never primary, and answers clients with the
	// reason.
	RoleFailed = "failed"
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
	// Identity is the data directory's identity (replica.Identity).
	Identity string
	// Stable is an offset durable on every replica (replica.Ready.Stable).
	Stable uint64
	// LeaseUntil is when this primary's read lease runs out (zero: it holds
	// none); LeaseReason says why it holds none, for errors and status.
	LeaseUntil  time.Time
	LeaseReason string
	// DiskFull describes a disk below its reserve ("disk nearly full on
	// replica 1: 12 MiB free, reserve 256 MiB; not taking writes"), "" when
	// there is room. A primary in that state still serves reads.
	DiskFull string
	// Replicas is the cluster as this replica sees it, by id; this one
	// included.
	Replicas []ReplicaStatus
	// Snapshots is this replica's snapshots and compaction (zero when
	// snapshots are disabled).
	Snapshots SnapshotStatus
}

// SnapshotStatus describes a replica's snapshots and the compaction of its
// log (snapshot.go).
type SnapshotStatus struct {
	// Latest is the newest durable snapshot's offset and LatestBytes its
	// size; Base the newest beyond any fork's reach (the one offered to
	// backups and the bound of compaction); Safe the safe offset. 0: none.
	Latest, Base, Safe uint64
	LatestBytes        int64
	// LogFirst is the log's first retained offset (1 when nothing was
	// compacted).
	LogFirst uint64
	// Receiving describes a snapshot being received from the primary
	// (ReceivingOffset 0: none): bytes received of ReceivingBytes.
	ReceivingFrom                 replica.NodeID
	ReceivingOffset               uint64
	ReceivedBytes, ReceivingBytes int64
	// Sending counts the streams to backups in progress.
	Sending int
	// Taken, Installed and Rejected count snapshots taken here, installed
	// here, and received but rejected (damaged) since the process started.
	Taken, Installed, Rejected uint64
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

// identityText is id.String(), formatted once per identity.
func (s *Shell) identityText(id replica.Identity) string {
	if s.identity.text == "" || s.identity.id != id {
		s.identity.id, s.identity.text = id, id.String()
	}
	return s.identity.text
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
		Identity:   s.identityText(st.Identity),
		Stable:     uint64(st.Stable),
		LeaseUntil: s.leaseUntil(st),
	}
	if !time.Now().Before(out.LeaseUntil) {
		out.LeaseReason = s.noLeaseReason(st)
	}
	if st.Err != nil {
		// Its log cannot be read: never reported as primary or backup.
		out.Role = RoleFailed
		out.Waiting = "failed: " + st.Err.Error() + "; restart it with --repair to fetch its log again from the cluster"
	}
	if out.DiskFull = s.diskText(); out.DiskFull != "" && out.Waiting == "" && out.Role != RolePrimary {
		out.Waiting = out.DiskFull
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
	if s.snapshotsEnabled() {
		out.Snapshots = s.snapshotStatus()
	}
	s.status.Store(out)
}
