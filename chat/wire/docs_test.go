package wire

// TestDocExamples keeps docs/wire.md honest: every ```hex block in it must be
// whole, valid frames, exactly as this package encodes them.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/wire.md")
	require.NoError(t, err)

	blocks := hexBlocks(string(doc))
	require.GreaterOrEqual(t, len(blocks), 8, "the examples are there")
	for i, block := range blocks {
		b, err := hex.DecodeString(strings.Join(strings.Fields(block), ""))
		require.NoError(t, err, "block %d", i)
		r := bufio.NewReader(bytes.NewReader(b))
		var again []byte
		for {
			f, err := readFrame(r, DefaultMaxFrame)
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "block %d:\n%s", i, block)
			if f.Body != nil {
				require.NoError(t, checkValue(f.Body))
			}
			again, err = EncodeFrame(again, f, DefaultMaxFrame)
			require.NoError(t, err)
		}
		assert.Equal(t, hexOf(b), hexOf(again), "block %d is canonical", i)
	}
}

// hexBlocks returns the contents of the ```hex fenced blocks of a markdown text.
func hexBlocks(doc string) []string {
	var blocks []string
	for {
		start := strings.Index(doc, "```hex\n")
		if start < 0 {
			return blocks
		}
		doc = doc[start+len("```hex\n"):]
		end := strings.Index(doc, "```")
		if end < 0 {
			return blocks
		}
		blocks = append(blocks, doc[:end])
		doc = doc[end:]
	}
}
