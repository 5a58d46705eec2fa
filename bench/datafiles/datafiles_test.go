package datafiles

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A needle is found in a file's data, also past a hole, and not where it
// is absent; a needle cut by a hole is not found (the zero byte between).
func TestHolding(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	needle, other := RandomText(rng, 32), RandomText(rng, 32)
	f, err := os.Create(filepath.Join(dir, "sparse"))
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("head"), 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(needle), 64<<20) // after a 64 MiB hole
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plain"), []byte("x"+other+"y"), 0o600))

	found, err := Holding([]string{dir, filepath.Join(dir, "missing")}, needle, other, Mid(other), "absent")
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "sparse")}, found[needle])
	assert.Equal(t, []string{filepath.Join(dir, "plain")}, found[other])
	assert.Equal(t, []string{filepath.Join(dir, "plain")}, found[Mid(other)])
	assert.Empty(t, found["absent"])
	data, err := Data(filepath.Join(dir, "sparse"))
	require.NoError(t, err)
	assert.Less(t, len(data), 1<<20, "the hole is not read")
}
