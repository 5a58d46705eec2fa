package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// membershipMeta is the log's meta value that records the cluster a data
// directory belongs to: the --peers of its first start.
const membershipMeta = "chatd.peers"

// membership is the value stored under membershipMeta.
type membership struct {
	// IDs are the replicas of the cluster, sorted. They are what must
	// match: addresses may move.
	IDs []uint32 `json:"ids"`
	// Peers is the --peers value of the last start, for the message that
	// says how to start the replica again.
	Peers string `json:"peers"`
}

// membershipLog is what checkMembership needs of the event log.
type membershipLog interface {
	Meta(name string) ([]byte, bool, error)
	SetMeta(name string, value []byte) error
	Read(from eventlog.Offset, maxBytes int) ([]eventlog.Record, error)
	First() eventlog.Offset
	Last() eventlog.Offset
}

// checkMembership refuses to start a replica on a data directory written
// by another cluster (other replica ids: say, a one-replica cluster on
// what a three-replica one wrote), which would otherwise wait forever for
// replicas that --peers does not name. On the first start it records the
// membership. existed reports whether the directory held a membership or
// records before this start: then it is not new, and a missing secret file
// means the wrong one (see checkSecret).
func checkMembership(l membershipLog, cfg config) (existed bool, err error) {
	ids := slices.Sorted(maps.Keys(cfg.peers))
	here := membership{IDs: ids, Peers: peersString(cfg.peers)}
	v, ok, err := l.Meta(membershipMeta)
	if err != nil {
		return false, fmt.Errorf("read the cluster membership stored in %s: %w", cfg.dataDir, err)
	}
	if ok {
		var stored membership
		if err := json.Unmarshal(v, &stored); err != nil {
			return true, fmt.Errorf("the cluster membership stored in %s is unreadable (%v): start on a new empty --data directory", cfg.dataDir, err)
		}
		if !slices.Equal(stored.IDs, ids) {
			return true, membershipError(cfg, stored.IDs, stored.Peers)
		}
		if stored.Peers == here.Peers {
			return true, nil
		}
		// Same replicas, new addresses: remember them for the next message.
		return true, storeMembership(l, here)
	}
	existed = l.Last() > 0
	if existed {
		// Written before chatd stored the membership: the log's latest
		// in-sync set names the replicas it belonged to.
		isr, err := lastISR(l)
		if err != nil {
			return true, err
		}
		for _, id := range isr {
			if _, ok := cfg.peers[id]; !ok {
				return true, membershipError(cfg, isr, "")
			}
		}
	}
	return existed, storeMembership(l, here)
}

func storeMembership(l membershipLog, m membership) error {
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode the cluster membership: %w", err)
	}
	if err := l.SetMeta(membershipMeta, v); err != nil {
		return fmt.Errorf("store the cluster membership: %w", err)
	}
	return nil
}

// membershipError says that the data directory belongs to the cluster of
// replicas ids (started with --peers peers, when known), and how to go on.
func membershipError(cfg config, ids []uint32, peers string) error {
	was := "replicas " + idList(ids)
	if len(ids) == 1 {
		was = "replica " + idList(ids) + " alone"
	}
	if peers != "" {
		was += " (--peers " + peers + ")"
	}
	now := "--peers " + peersString(cfg.peers)
	if len(cfg.peers) == 1 {
		now = "replica " + idList(slices.Sorted(maps.Keys(cfg.peers))) + " alone (" + now + ")"
	}
	return fmt.Errorf("data directory %s belongs to a cluster of %s, but this start has %s: "+
		"start it with that cluster's --peers, or on a new empty --data directory for a new cluster (move %s away to keep its data)",
		cfg.dataDir, was, now, cfg.dataDir)
}

// lastISR returns the replicas of the log's latest in-sync set record, nil
// if it has none, or none that can be read: an index or record that cannot
// be used proves nothing about the membership, and replication reports its
// own problems with them.
func lastISR(l membershipLog) ([]uint32, error) {
	v, ok, err := l.Meta(replica.ISRIndexKey)
	if err != nil || !ok {
		return nil, err
	}
	x, xerr := replica.DecodeISRIndex(v)
	if xerr != nil || x.At == 0 || x.At < l.First() || x.At > l.Last() {
		return nil, nil
	}
	recs, rerr := l.Read(x.At, 1)
	if rerr != nil || len(recs) == 0 || recs[0].Type != replica.TypeISR {
		return nil, nil
	}
	c, cerr := replica.DecodeISRChange(recs[0].Data)
	if cerr != nil {
		return nil, nil
	}
	ids := make([]uint32, len(c.Members))
	for i, m := range c.Members {
		ids[i] = uint32(m.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

// checkSecret refuses a --secret-file that does not exist when the data
// directory is not new: creating a new secret would cut the replica off
// from the cluster it belongs to, whose peers would reject it with nothing
// in sight but "waiting to hear from ...".
func checkSecret(cfg config, existed bool) error {
	if len(cfg.peers) < 2 || !existed {
		return nil
	}
	_, err := os.Stat(cfg.secretFile)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("secret file %s does not exist, but data directory %s already belongs to a cluster: "+
			"a new secret would lock this replica out of it; pass --secret-file with the file the cluster's other replicas use "+
			"(or start on a new empty --data directory for a new cluster)", cfg.secretFile, cfg.dataDir)
	}
	return nil // another problem with the file is LoadOrCreateSecret's to report
}

// peersString formats peers as the --peers flag takes them, by id.
func peersString(peers map[uint32]string) string {
	parts := make([]string, 0, len(peers))
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		parts = append(parts, fmt.Sprintf("%d=%s", id, peers[id]))
	}
	return strings.Join(parts, ",")
}

func idList(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}
