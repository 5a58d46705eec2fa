package transport

// Fuzz targets for everything the acceptor decodes before a peer has
// proven anything: frames, and the handshake as a whole. Seeds live in
// testdata/fuzz.

import (
	"bytes"
	"io"
	"testing"
)

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add(appendFrame(nil, []byte("message")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0, 0, 1})
	const max = 1 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		fr := frameReader{r: r}
		consumed := 0
		for {
			body, err := fr.read(max)
			if err != nil {
				if err == io.EOF && consumed != len(data) {
					t.Fatalf("EOF after %d of %d bytes", consumed, len(data))
				}
				return
			}
			if len(body) > max {
				t.Fatalf("frame of %d bytes passed the limit %d", len(body), max)
			}
			frame := appendFrame(nil, body)
			if !bytes.Equal(frame, data[consumed:consumed+len(frame)]) {
				t.Fatalf("frame at %d does not re-encode to its input", consumed)
			}
			consumed += len(frame)
		}
	})
}

func FuzzHandshake(f *testing.F) {
	f.Add([]byte(Magic))
	f.Add(hello{Version: Version, From: 0, To: 1}.frame([]byte(Magic)))
	f.Add(proofFrame(hello{Version: Version, From: 0, To: 1}.frame([]byte(Magic)), [macLen]byte{}))
	f.Add(errorFrame(hello{Version: Version, From: 0, To: 1}.frame([]byte(Magic)), "no"))
	f.Add(hello{Version: Version, From: 2, To: 1}.frame([]byte(Magic)))
	hs := handshaker{self: 1, secret: testSecret, known: knownIDs(0, 2)}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Without the secret no input can pass: the acceptor's nonce is
		// fresh, so a proof in the input cannot match.
		if from, err := hs.accept(bytes.NewReader(data), io.Discard); err == nil {
			t.Fatalf("handshake accepted as peer %d without a valid proof", from)
		}
		// The decoders alone, on the raw bytes and on every frame body.
		if h, err := decodeHello(data); err == nil {
			if got := h.frame(nil)[frameHeaderLen:]; !bytes.Equal(got, data) {
				t.Fatalf("hello does not re-encode to its input")
			}
		}
		decodeChallenge(data)
		decodeProof(data)
		decodeOK(data)
		if err := refusal(data); err != nil && len(err.(*RefusedError).Reason) > 4*maxReason {
			t.Fatalf("reason of %d bytes", len(err.(*RefusedError).Reason))
		}
	})
}
