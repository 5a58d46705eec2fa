package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormat(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/replichat/replichat", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "8dd3203c0a1e2b3c4d5e6f708192a3b4c5d6e7f8"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	want := "chatd github.com/replichat/replichat (devel) rev 8dd3203c0a1e+dirty 2026-01-02T03:04:05Z go1.26.0 " + runtime.GOOS + "/" + runtime.GOARCH
	assert.Equal(t, want, format("chatd", bi))

	bi.Settings = nil
	bi.Main.Version = "v1.2.3"
	assert.Contains(t, format("chat", bi), "chat github.com/replichat/replichat v1.2.3 rev unknown go1.26.0")
}

func TestVersion_OneLine(t *testing.T) {
	v := Version("chat")
	assert.True(t, strings.HasPrefix(v, "chat "), v)
	assert.NotContains(t, v, "\n")
	assert.Contains(t, v, runtime.Version())
}
