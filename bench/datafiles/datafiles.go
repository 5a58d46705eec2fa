// Package datafiles finds strings in the bytes of data directories: what
// the tests that check "deletes really delete" search. It reads each file
// once and only its data: Badger's write-ahead and value logs are large
// sparse files, mostly holes.
package datafiles

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Holding returns, for each needle, the files under dirs whose data holds
// it. A file removed while the walk runs (a live replica compacting) is
// skipped.
func Holding(dirs []string, needles ...string) (map[string][]string, error) {
	found := make(map[string][]string)
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || d.IsDir() {
				return err
			}
			data, err := Data(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, n := range needles {
				if bytes.Contains(data, []byte(n)) {
					found[n] = append(found[n], path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return found, nil
}

// Data reads a file's data segments, its holes left out, each segment
// followed by a zero byte so that no needle spans a hole.
func Data(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var out []byte
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: only a hole after off
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = fi.Size()
		}
		buf := make([]byte, hole-data)
		if _, err := f.ReadAt(buf, data); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		out = append(append(out, buf...), 0)
		off = hole
	}
	return out, nil
}

// RandomText returns n bytes of printable ASCII from a 94-character
// alphabet: practically incompressible for Snappy (Badger's table
// compression), so a stored copy is found byte for byte.
func RandomText(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(33 + rng.IntN(94))
	}
	return string(b)
}

// Mid returns the middle half of s: what to search for, since Snappy may
// fold a few bytes at the edges into a match with the bytes around them.
func Mid(s string) string { return s[len(s)/4 : len(s)-len(s)/4] }
