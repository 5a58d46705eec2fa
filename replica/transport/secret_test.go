package transport

// LoadOrCreateSecret must give every replica started with the same path
// the same complete secret, create it private, and never clobber one.

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadOrCreateSecret_CreatesThenLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.secret")
	secret, created, err := LoadOrCreateSecret(path)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Len(t, secret, secretLen)

	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	content, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(secret)+"\n", string(content))

	again, created, err := LoadOrCreateSecret(path)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, secret, again)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestLoadOrCreateSecret_ConcurrentStartsAgree(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "cluster.secret")
		const replicas = 3
		secrets := make([][]byte, replicas)
		createdBy := make([]bool, replicas)
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Go(func() { secrets[i], createdBy[i], errs[i] = LoadOrCreateSecret(path) })
		}
		wg.Wait()
		creators := 0
		for i := range replicas {
			require.NoError(t, errs[i])
			assert.Equal(t, secrets[0], secrets[i])
			if createdBy[i] {
				creators++
			}
		}
		assert.Equal(t, 1, creators)
		onDisk, created, err := LoadOrCreateSecret(path)
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, secrets[0], onDisk, "everyone holds what is on disk")
	}
}

func TestLoadOrCreateSecret_RejectsBadFiles(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"not hex", "this is not hex at all, not even close\n", "not hex"},
		{"too short", hex.EncodeToString(make([]byte, MinSecretLen-1)), "want at least"},
		{"empty", "", "want at least"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cluster.secret")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			_, _, err := LoadOrCreateSecret(path)
			assert.ErrorContains(t, err, tt.wantErr)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tt.content, string(got), "a bad secret is reported, never replaced")
		})
	}

	t.Run("accepts surrounding whitespace and upper case", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cluster.secret")
		require.NoError(t, os.WriteFile(path, []byte("  00112233445566778899AABBCCDDEEFF\r\n"), 0o600))
		got, created, err := LoadOrCreateSecret(path)
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, "00112233445566778899aabbccddeeff", hex.EncodeToString(got))
	})

	t.Run("missing directory", func(t *testing.T) {
		_, _, err := LoadOrCreateSecret(filepath.Join(t.TempDir(), "nope", "cluster.secret"))
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
}
