package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// failpointEnv arms a crash for tests. "crash-after-commit:OP:N" kills this
// process with SIGKILL after the N-th committed OP request (e.g. send), before
// its reply is written: the window in which a client cannot know whether its
// request took effect, which exactly-once retries must cover. Unset in
// production; a malformed value is a start-up error rather than ignored.
const failpointEnv = "REPLICHAT_FAILPOINT"

func afterCommitFailpoint(logger *slog.Logger) (func(op string), error) {
	spec := os.Getenv(failpointEnv)
	if spec == "" {
		return nil, nil
	}
	parts := strings.Split(spec, ":")
	if len(parts) != 3 || parts[0] != "crash-after-commit" {
		return nil, fmt.Errorf("%s=%q: want crash-after-commit:OP:N", failpointEnv, spec)
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: N must be a positive number", failpointEnv, spec)
	}
	op := parts[1]
	logger.Warn("failpoint armed: this replica will SIGKILL itself", "failpoint", spec)
	var count atomic.Int64
	return func(got string) {
		if got == op && count.Add(1) == int64(n) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never reply
		}
	}, nil
}
