package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info is what the toolchain recorded about a build, field by field, for a
// metrics endpoint's build information (Version is the one-line form).
type Info struct {
	// Module is the main module's path; Version its version ("(devel)"
	// for a build from a work tree). Both are "unknown" when not recorded.
	Module, Version string
	// Revision is the VCS revision (the full hash, "+dirty" appended when
	// the tree had local changes), "unknown" when not recorded.
	Revision string
	// GoVersion is the toolchain's version.
	GoVersion string
}

// Read returns this binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Module: "unknown", Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()}
	}
	return info(bi)
}

func info(bi *debug.BuildInfo) Info {
	out := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	var dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	for _, f := range []*string{&out.Module, &out.Version, &out.Revision} {
		if *f == "" {
			*f = "unknown"
		}
	}
	if out.Revision != "unknown" {
		out.Revision += dirty
	}
	if out.GoVersion == "" {
		out.GoVersion = runtime.Version()
	}
	return out
}
