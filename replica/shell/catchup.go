package shell

import (
	"log/slog"
	"time"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// catchUpLog reports, on the primary, the progress of backups that are far
// behind its log: a line a second while one catches up (how far, how fast),
// and one when it has caught up. Only the loop uses it.
type catchUpLog struct {
	peers map[replica.NodeID]*catchUpPeer
}

type catchUpPeer struct {
	since     time.Time       // when it was first seen far behind
	startAt   eventlog.Offset // its match then
	lastLog   time.Time
	lastMatch eventlog.Offset
}

// catchUpGap is how far behind a backup must be to count as catching up
// rather than just receiving the latest batch.
const catchUpGap = 1000

// catchUpEvery is the interval of the progress lines.
const catchUpEvery = time.Second

func (c *catchUpLog) reset() { clear(c.peers) }

func (c *catchUpLog) observe(st replica.Status, now time.Time, logger *slog.Logger) {
	if c.peers == nil {
		c.peers = make(map[replica.NodeID]*catchUpPeer)
	}
	for _, p := range st.Peers {
		behind := st.LogEnd > p.Match+catchUpGap
		cp := c.peers[p.ID]
		switch {
		case behind && cp == nil:
			c.peers[p.ID] = &catchUpPeer{since: now, startAt: p.Match, lastLog: now, lastMatch: p.Match}
			logger.Info("backup catching up", "peer", p.ID, "match", p.Match, "log_end", st.LogEnd, "behind", st.LogEnd-p.Match)
		case behind && now.Sub(cp.lastLog) >= catchUpEvery:
			rate := float64(p.Match-min(p.Match, cp.lastMatch)) / now.Sub(cp.lastLog).Seconds()
			logger.Info("backup catching up", "peer", p.ID, "match", p.Match, "log_end", st.LogEnd,
				"behind", st.LogEnd-p.Match, "events_per_sec", int64(rate))
			cp.lastLog, cp.lastMatch = now, p.Match
		case !behind && cp != nil:
			took := now.Sub(cp.since)
			logger.Info("backup caught up", "peer", p.ID, "events", p.Match-min(p.Match, cp.startAt),
				"took", took.Round(time.Millisecond), "in_sync", p.InSync)
			delete(c.peers, p.ID)
		}
	}
}
