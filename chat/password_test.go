package chat

// Goal: password hashes are PHC strings carrying their parameters, verify
// only the right password, and a malformed or hostile stored hash is an
// error rather than a panic or an unbounded allocation.

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPassword(t *testing.T) {
	p := ArgonParams{Time: 1, MemoryKiB: 16, Threads: 2}
	phc, err := hashPassword("secret", p, rand.NewChaCha8([32]byte{}))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(phc, "$argon2id$v=19$m=16,t=1,p=2$"), phc)

	ok, err := checkPassword(phc, "secret")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = checkPassword(phc, "Secret")
	require.NoError(t, err)
	assert.False(t, ok)

	parts := strings.Split(phc, "$")
	bad := []struct{ name, phc string }{
		{"empty", ""},
		{"not argon2id", strings.Replace(phc, "argon2id", "argon2i", 1)},
		{"missing part", strings.Join(parts[:5], "$")},
		{"version", strings.Replace(phc, "v=19", "v=16", 1)},
		{"params", strings.Replace(phc, "m=16,t=1,p=2", "m=16;t=1", 1)},
		{"huge memory", strings.Replace(phc, "m=16", "m=99999999", 1)},
		{"zero time", strings.Replace(phc, "t=1", "t=0", 1)},
		{"salt", "$argon2id$v=19$m=16,t=1,p=2$!!$" + parts[5]},
		{"key", "$argon2id$v=19$m=16,t=1,p=2$" + parts[4] + "$!!"},
		{"empty key", "$argon2id$v=19$m=16,t=1,p=2$" + parts[4] + "$"},
		{"huge key", "$argon2id$v=19$m=16,t=1,p=2$" + parts[4] + "$" + strings.Repeat("A", 1000)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkPassword(tt.phc, "secret")
			assert.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
	_, err = hashPassword("x", ArgonParams{Time: 1, MemoryKiB: 8, Threads: 2}, rand.NewChaCha8([32]byte{}))
	assert.ErrorIs(t, err, ErrInvalidArgument, "memory below 8 KiB per thread")
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "A.b-c_9": true, strings.Repeat("x", MaxNameLen): true,
		"": false, strings.Repeat("x", MaxNameLen+1): false, "a b": false, "a/b": false,
		"é": false, "a*": false, "a\x00": false,
	} {
		assert.Equal(t, want, validName(name), "%q", name)
	}
}
