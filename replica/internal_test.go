package replica

// Table tests of the core's pure pieces; each case cites the rule it checks.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

func TestConfig_Validate(t *testing.T) {
	ok := Config{ID: 1, Peers: []NodeID{0, 1, 2}}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // substring of the error; "" for valid
	}{
		{"defaults are valid", func(c *Config) {}, ""},
		{"majority mode is not implemented yet", func(c *Config) { c.Mode = ModeMajority }, "mode majority is not implemented"},
		{"unknown mode", func(c *Config) { c.Mode = 9 }, "unknown mode"},
		{"id must be a peer", func(c *Config) { c.ID = 5 }, "do not include this replica 5"},
		{"no peers", func(c *Config) { c.Peers = nil }, "no peers"},
		{"duplicate peer", func(c *Config) { c.Peers = []NodeID{0, 1, 1} }, "listed twice"},
		{"reserved id", func(c *Config) { c.Peers = []NodeID{1, None} }, "reserved"},
		{"failover must exceed two heartbeats", func(c *Config) { c.HeartbeatTicks, c.FailoverTicks = 5, 10 }, "FailoverTicks 10 must exceed"},
		{"pause threshold below failover minus heartbeat", func(c *Config) { c.FailoverTicks, c.PauseTicks = 20, 19 }, "PauseTicks 19"},
		{"lag at least failover", func(c *Config) { c.FailoverTicks, c.LagTicks = 20, 10 }, "LagTicks 10"},
		{"negative batch", func(c *Config) { c.MaxBatchBytes = -1 }, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Peers = append([]NodeID(nil), ok.Peers...)
			tt.mutate(&c)
			err := c.withDefaults().validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Each replica owns the epochs congruent to its rank, so two candidates never
// run for the same epoch (at most one primary per epoch, even partitioned).
func TestNode_NextEpoch(t *testing.T) {
	tests := []struct {
		id   NodeID
		from eventlog.Epoch
		want eventlog.Epoch
	}{
		{0, 0, 1}, {1, 0, 2}, {2, 0, 3},
		{0, 1, 4}, {1, 1, 2}, {2, 1, 3},
		{0, 5, 7}, {1, 5, 8}, {2, 5, 6},
	}
	for _, tt := range tests {
		n := &Node{cfg: Config{ID: tt.id, Peers: []NodeID{2, 0, 1}}}
		assert.Equal(t, tt.want, n.nextEpoch(tt.from), "node %d after epoch %d", tt.id, tt.from)
	}
}

// Election freshness: last epoch first, then last offset.
func TestFresher(t *testing.T) {
	assert.True(t, fresher(3, 1, 2, 100), "a later epoch beats a longer log")
	assert.True(t, fresher(2, 11, 2, 10))
	assert.False(t, fresher(2, 10, 2, 10), "equal is not fresher")
	assert.False(t, fresher(1, 50, 2, 1))
}

// Catch-up by offset (Kafka OffsetsForLeaderEpoch): where a log's history up
// to an epoch ends.
func TestLogView_EndFor(t *testing.T) {
	// Epoch 1: offsets 1-4, epoch 3: 5-9, epoch 6: 10-12.
	v := logView{last: 12, epochs: []eventlog.EpochStart{{Epoch: 1, Start: 1}, {Epoch: 3, Start: 5}, {Epoch: 6, Start: 10}}}
	tests := []struct {
		ask      eventlog.Epoch
		wantE    eventlog.Epoch
		wantLast eventlog.Offset
	}{
		{0, 0, 0},  // before any epoch: nothing shared
		{1, 1, 4},  // epoch 1 ends where epoch 3 starts
		{2, 1, 4},  // an epoch we never had: the largest below it
		{3, 3, 9},  //
		{5, 3, 9},  //
		{6, 6, 12}, // the last epoch ends at the log end
		{9, 6, 12}, //
	}
	for _, tt := range tests {
		e, end := v.endFor(tt.ask)
		assert.Equal(t, tt.wantE, e, "epoch for %d", tt.ask)
		assert.Equal(t, tt.wantLast, end, "end for %d", tt.ask)
	}
	for off, want := range map[eventlog.Offset]eventlog.Epoch{0: 0, 1: 1, 4: 1, 5: 3, 9: 3, 10: 6, 12: 6} {
		assert.Equal(t, want, v.epochAt(off), "epoch at %d", off)
	}
	assert.Panics(t, func() { v.epochAt(13) }, "beyond the log end is a programmer error")
}

func TestISRView_Newer(t *testing.T) {
	a := isrView{epoch: 2, at: 50}
	assert.True(t, isrView{epoch: 3, at: 10}.newer(a), "a later epoch's record is newer whatever its offset")
	assert.True(t, isrView{epoch: 2, at: 51}.newer(a))
	assert.False(t, a.newer(a))
	assert.False(t, isrView{}.newer(a), "the initial ISR is the oldest")
}
