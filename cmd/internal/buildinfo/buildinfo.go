// Package buildinfo formats what the Go toolchain recorded about a build,
// for the --version flag of every replichat binary.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version returns one line naming the program, the module's version, the
// VCS revision it was built from (with "+dirty" when the tree had local
// changes, and the commit time) and the Go version:
//
//	chatd github.com/replichat/replichat (devel) rev 8dd3203c0a1e+dirty 2026-01-02T03:04:05Z go1.26.0 linux/amd64
//
// Parts the build did not record (a binary built by "go run", or outside a
// repository) are left out, or "unknown".
func Version(program string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("%s (no build information) %s %s/%s", program, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	return format(program, bi)
}

func format(program string, bi *debug.BuildInfo) string {
	module, version := bi.Main.Path, bi.Main.Version
	if module == "" {
		module = "unknown-module"
	}
	if version == "" {
		version = "unknown"
	}
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	line := fmt.Sprintf("%s %s %s", program, module, version)
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += " rev " + rev + dirty
		if when != "" {
			line += " " + when
		}
	} else {
		line += " rev unknown"
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	return fmt.Sprintf("%s %s %s/%s", line, goVersion, runtime.GOOS, runtime.GOARCH)
}
