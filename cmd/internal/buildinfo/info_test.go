package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/replichat/replichat", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "8dd3203c0a1e2b3c4d5e6f708192a3b4c5d6e7f8"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	assert.Equal(t, Info{Module: "github.com/replichat/replichat", Version: "(devel)",
		Revision: "8dd3203c0a1e2b3c4d5e6f708192a3b4c5d6e7f8+dirty", GoVersion: "go1.26.0"}, info(bi))

	assert.Equal(t, Info{Module: "unknown", Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()},
		info(&debug.BuildInfo{}), "what the build did not record is unknown")
}

func TestRead(t *testing.T) {
	got := Read()
	assert.Equal(t, runtime.Version(), got.GoVersion)
	assert.NotEmpty(t, got.Module)
	assert.NotEmpty(t, got.Revision)
}
