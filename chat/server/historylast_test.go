package server

// The history op paged from the end (HistoryRequest.Last), over the wire.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/wire"
)

func TestServer_HistoryLast(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.user(t, "alice")
	ts.user(t, "bob")
	for i := range 5 {
		alice.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: fmt.Sprint("m", i)}, nil)
	}
	bodies := func(h wire.HistoryResponse) []string {
		var out []string
		for _, m := range h.Messages {
			out = append(out, m.Body)
		}
		return out
	}

	var hist wire.HistoryResponse
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 2, Last: true}, &hist)
	assert.Equal(t, []string{"m3", "m4"}, bodies(hist), "the newest, oldest first")
	assert.Zero(t, hist.Next)
	require.NotZero(t, hist.Prev)
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 2, Last: true, Before: hist.Prev}, &hist)
	assert.Equal(t, []string{"m1", "m2"}, bodies(hist))
	alice.mustCall(wire.OpHistory, wire.HistoryRequest{Limit: 2, Last: true, Before: hist.Prev}, &hist)
	assert.Equal(t, []string{"m0"}, bodies(hist))
	assert.Zero(t, hist.Prev, "the page that starts the history")

	alice.mustCall(wire.OpHistory, wire.HistoryRequest{With: "bob", Last: true}, &hist)
	assert.Len(t, hist.Messages, 5, "the server's page size")
}
