package replica

import (
	"math"
	"strconv"
)

// NodeID names a replica. IDs are chosen by the operator (CONTRACT.md:
// --id 0, 1, 2) and never reused for another replica's disk.
type NodeID uint32

// None is the NodeID meaning "no node" (no primary known, no vote cast).
const None NodeID = math.MaxUint32

// String formats the id as a decimal number, or "none".
func (id NodeID) String() string {
	if id == None {
		return "none"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// Role is what a node currently does in the protocol.
type Role uint8

// Roles.
const (
	// RoleBackup follows a primary, or waits for one to be elected.
	RoleBackup Role = iota
	// RoleCandidate is asking the other replicas for their votes.
	RoleCandidate
	// RolePrimary accepts proposals and replicates them.
	RolePrimary
)

// String returns "backup", "candidate" or "primary".
func (r Role) String() string {
	switch r {
	case RoleBackup:
		return "backup"
	case RoleCandidate:
		return "candidate"
	case RolePrimary:
		return "primary"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Mode is the commit rule, chosen when the cluster is created.
type Mode uint8

// Modes (DESIGN.md section 3).
const (
	// ModeAll commits a record once every member of the ISR has it durably.
	// N replicas keep working with N-1 crashed; exact under fail-stop.
	ModeAll Mode = iota
	// ModeMajority is Raft-style quorum commit. Not implemented yet:
	// Config.validate rejects it.
	ModeMajority
)

// String returns "all" or "majority".
func (m Mode) String() string {
	switch m {
	case ModeAll:
		return "all"
	case ModeMajority:
		return "majority"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}
