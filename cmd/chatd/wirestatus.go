package main

import (
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/replica/shell"
)

type wireLagSample = wire.LagSample

func wireStatus(rs shell.ReplicaStatus, role string) wire.ReplicaStatus {
	return wire.ReplicaStatus{
		ID: uint32(rs.ID), Addr: rs.Addr, Role: role, Epoch: rs.Epoch,
		LogEnd: rs.LogEnd, Commit: rs.Commit, InSync: rs.InSync, Waiting: rs.Waiting,
	}
}
