package wire

// FuzzReadFrame feeds arbitrary bytes to the frame reader. It must never
// panic, never allocate much more than the frame size limit whatever the
// declared lengths, and anything it accepts must re-encode to a frame that
// reads back equal.

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzMaxFrame is small so that forged lengths above it are common inputs.
const fuzzMaxFrame = 4096

// fuzzAllocSlack covers what decoding allocates besides copies of the body:
// error values and their messages, the Error struct.
const fuzzAllocSlack = 16 << 10

func FuzzReadFrame(f *testing.F) {
	for _, tc := range sampleFrames {
		if b, err := EncodeFrame(nil, tc.f, fuzzMaxFrame); err == nil {
			f.Add(b)
		}
	}
	f.Add(frameBytes(0, nil))
	f.Add(frameBytes(fuzzMaxFrame+1, nil))
	f.Add(frameBytes(1<<24, nil))
	f.Add(frameBytes(3, []byte{0xc1, 0xc1, 0xc1}))
	f.Add([]byte{0, 0, 0, 6, 0x81, 0xdb, 0x7f, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, size := range []int{16, readBufferSize} { // copying and in-place paths
			r := bufio.NewReaderSize(bytes.NewReader(data), size)
			for range 4 { // a few frames per input
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				got, err := readFrame(r, fuzzMaxFrame)
				runtime.ReadMemStats(&after)
				assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(3*fuzzMaxFrame+fuzzAllocSlack))
				if err == io.EOF {
					break
				}
				if err != nil {
					assert.NotEqual(t, CodeInternal, ErrorOf(err).Code, "%v", err)
					break
				}

				// Re-encoding may add the keys an input left out (id, op),
				// so it gets a little more room than the reader did.
				b, err := EncodeFrame(nil, got, fuzzMaxFrame+64)
				require.NoError(t, err, "a frame that was read must encode")
				again, err := readFrame(bufio.NewReader(bytes.NewReader(b)), fuzzMaxFrame+64)
				require.NoError(t, err)
				require.Equal(t, got, again)
			}
		}
	})
}
