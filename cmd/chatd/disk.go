package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// diskFreeEnv names a file whose contents (a number of bytes) the disk guard
// reads as the free space instead of asking the filesystem: the test
// failpoint for a disk that fills up and empties again without filling a
// real one. Unset in production.
const diskFreeEnv = "REPLICHAT_DISK_FREE_FILE"

// diskFree returns the probe of the free space on the filesystem holding
// dir, for the shell's guard: what an unprivileged process may still write
// (statfs's f_bavail), or the failpoint file's number.
func diskFree(dir string) func() (uint64, error) {
	if path := os.Getenv(diskFreeEnv); path != "" {
		return func() (uint64, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", diskFreeEnv, err)
			}
			return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		}
	}
	return func() (uint64, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		return st.Bavail * uint64(st.Bsize), nil
	}
}

// diskFreeProbe is the shell's DiskFree for cfg: nil (no guard) when the
// reserve is 0.
func diskFreeProbe(cfg config) func() (uint64, error) {
	if cfg.diskReserveMiB == 0 {
		return nil
	}
	return diskFree(cfg.dataDir)
}
