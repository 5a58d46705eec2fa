package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/replichat/replichat/bench/cluster"
)

// bins are the binaries built once by TestMain for every test. It is set
// before any test runs and only read afterwards.
var bins cluster.Binaries

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds the binaries into a temporary directory, runs the tests
// and removes the directory (os.Exit in TestMain would skip a defer).
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "replichat-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if bins, err = cluster.Build(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the binaries:", err)
		return 1
	}
	return m.Run()
}
