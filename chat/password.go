package chat

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ArgonParams are the argon2id cost parameters. They are encoded into every
// hash (PHC string format), so they can change without breaking old logins.
type ArgonParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgonParams are the production costs (OWASP's argon2id minimum:
// t=2, m=19 MiB, p=1).
func DefaultArgonParams() ArgonParams {
	return ArgonParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}
}

const (
	saltLen = 16
	keyLen  = 32
	// maxArgonMemoryKiB bounds what a stored hash may make VerifyLogin
	// allocate (a corrupt or hostile hash must not exhaust memory).
	maxArgonMemoryKiB = 1 << 18 // 256 MiB
	maxArgonTime      = 16
)

func (p ArgonParams) validate() error {
	if p.Time == 0 || p.Time > maxArgonTime || p.Threads == 0 ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgonMemoryKiB {
		return fmt.Errorf("%w: argon2 params t=%d m=%d p=%d", ErrInvalidArgument, p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// hashPassword returns the PHC string
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<hash>
// (unpadded standard base64), with a fresh salt read from rnd.
func hashPassword(password string, p ArgonParams, rnd io.Reader) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		p.MemoryKiB, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the PHC string phc,
// comparing in constant time.
func checkPassword(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, fmt.Errorf("%w: not an argon2id hash", ErrInvalidArgument)
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("%w: argon2 version %q", ErrInvalidArgument, parts[2])
	}
	var p ArgonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, fmt.Errorf("%w: argon2 params %q: %v", ErrInvalidArgument, parts[3], err)
	}
	if err := p.validate(); err != nil {
		return false, err
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("%w: argon2 salt: %v", ErrInvalidArgument, err)
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, fmt.Errorf("%w: argon2 key: %v", ErrInvalidArgument, err)
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
