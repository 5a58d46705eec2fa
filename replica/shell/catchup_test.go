package shell

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

func TestCatchUpLog_ReportsProgressAndEnd(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	var c catchUpLog
	t0 := time.Unix(0, 0)
	status := func(match uint64) replica.Status {
		return replica.Status{LogEnd: 50_000, Peers: []replica.PeerStatus{{ID: 2, Match: eventlog.Offset(match)}}}
	}
	c.observe(status(10_000), t0, logger)
	c.observe(status(20_000), t0.Add(500*time.Millisecond), logger) // under a second: no line
	c.observe(status(30_000), t0.Add(time.Second), logger)
	c.observe(status(49_990), t0.Add(1500*time.Millisecond), logger)
	out := buf.String()
	assert.Equal(t, 2, bytes.Count(buf.Bytes(), []byte("backup catching up")), out)
	assert.Contains(t, out, "events_per_sec=20000")
	assert.Contains(t, out, `backup caught up" peer=2 events=39990 took=1.5s`)
	c.observe(status(49_990), t0.Add(3*time.Second), logger)
	assert.Equal(t, 1, bytes.Count(buf.Bytes(), []byte("caught up")), "reported once")
}
