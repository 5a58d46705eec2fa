package transport

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// secretLen is the size of a secret LoadOrCreateSecret creates.
const secretLen = 32

// LoadOrCreateSecret returns the cluster secret stored in hex at path. If
// the file does not exist it creates it, mode 0600, with 32 random bytes,
// and reports created.
//
// Several replicas started at once with the same path end up with the same
// secret: the file is written in full to a temporary file next to path and
// then hard-linked into place, which fails rather than clobbers if path
// exists. So path, once visible, is always complete, and whoever loses the
// race reads the winner's secret.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	secret, err = readSecret(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return secret, false, err
	}
	fresh := make([]byte, secretLen)
	rand.Read(fresh) // never returns an error (crypto/rand, Go 1.24+)
	won, err := publishFile(path, []byte(hex.EncodeToString(fresh)+"\n"))
	if err != nil {
		return nil, false, fmt.Errorf("create secret %s: %w", path, err)
	}
	if won {
		return fresh, true, nil
	}
	secret, err = readSecret(path)
	return secret, false, err
}

func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	secret, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("read secret %s: not hex: %w", path, err)
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("read secret %s: %d bytes, want at least %d", path, len(secret), MinSecretLen)
	}
	return secret, nil
}

// publishFile makes data appear at path, complete and durable, unless path
// already exists: then it returns false and leaves path alone.
func publishFile(path string, data []byte) (won bool, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // the link, if made, keeps the data
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// link(2), unlike rename(2), fails when the target exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if err := syncDir(dir); err != nil {
		return false, err
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
