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
// request took effect, which exactly-once retries must cover.
// "crash-after-commit:OP:N:TOKEN" fires only if it can create the file TOKEN
// (exclusively), so that when every replica is armed, only the first to get
// there crashes. Unset in production; a malformed value is a start-up error
// rather than ignored.
const failpointEnv = "REPLICHAT_FAILPOINT"

func afterCommitFailpoint(logger *slog.Logger) (func(op string), error) {
	spec := os.Getenv(failpointEnv)
	if spec == "" {
		return nil, nil
	}
	parts := strings.SplitN(spec, ":", 4)
	if len(parts) < 3 || parts[0] != "crash-after-commit" {
		return nil, fmt.Errorf("%s=%q: want crash-after-commit:OP:N[:TOKEN]", failpointEnv, spec)
	}
	token := ""
	if len(parts) == 4 {
		token = parts[3]
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: N must be a positive number", failpointEnv, spec)
	}
	op := parts[1]
	logger.Warn("failpoint armed: this replica will SIGKILL itself", "failpoint", spec)
	var count atomic.Int64
	return func(got string) {
		if got != op || count.Add(1) != int64(n) {
			return
		}
		if token != "" {
			f, err := os.OpenFile(token, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return // another replica fired it already
			}
			f.Close()
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never reply
	}, nil
}
