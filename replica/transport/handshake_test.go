package transport

// The handshake in isolation, over net.Pipe: who refuses whom and with
// which error, on both sides, plus the decoders that face the network.

import (
	"bytes"
	"crypto/hmac"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func knownIDs(ids ...NodeID) func(NodeID) bool {
	return func(id NodeID) bool {
		for _, k := range ids {
			if k == id {
				return true
			}
		}
		return false
	}
}

func TestHandshake(t *testing.T) {
	other := []byte("some-other-cluster-secret")
	tests := []struct {
		name         string
		dialer       handshaker
		to           NodeID
		wantDialErr  error // nil: success
		wantAcceptEr error
	}{
		{"same secret", handshaker{self: 0, secret: testSecret}, 1, nil, nil},
		{"other secret", handshaker{self: 0, secret: other}, 1, ErrAuth, ErrRefused},
		{"addressed to another replica", handshaker{self: 0, secret: testSecret}, 2, ErrRefused, ErrWrongPeer},
		{"unknown dialer", handshaker{self: 9, secret: testSecret}, 1, ErrRefused, ErrWrongPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acceptor := handshaker{self: 1, secret: testSecret, known: knownIDs(0, 2)}
			dc, ac := net.Pipe()
			defer dc.Close()
			defer ac.Close()
			type result struct {
				from NodeID
				err  error
			}
			accepted := make(chan result, 1)
			go func() {
				from, err := acceptor.accept(ac, ac)
				ac.Close() // as Accept does: the dialer then sees EOF, not a hang
				accepted <- result{from, err}
			}()
			dialErr := tt.dialer.dial(dc, dc, tt.to)
			dc.Close()
			res := <-accepted
			if tt.wantDialErr == nil {
				require.NoError(t, dialErr)
				require.NoError(t, res.err)
				assert.Equal(t, tt.dialer.self, res.from)
				return
			}
			assert.ErrorIs(t, dialErr, tt.wantDialErr)
			assert.ErrorIs(t, res.err, tt.wantAcceptEr)
		})
	}
}

func TestComputeMAC_BindsEveryField(t *testing.T) {
	nd, na := newNonce(), newNonce()
	base := computeMAC(testSecret, labelDialer, 1, 2, nd, na)
	assert.Equal(t, base, computeMAC(testSecret, labelDialer, 1, 2, nd, na), "deterministic")
	variants := map[string][macLen]byte{
		"secret":  computeMAC([]byte("another-secret-of-16"), labelDialer, 1, 2, nd, na),
		"label":   computeMAC(testSecret, labelAcceptor, 1, 2, nd, na),
		"from":    computeMAC(testSecret, labelDialer, 3, 2, nd, na),
		"to":      computeMAC(testSecret, labelDialer, 1, 3, nd, na),
		"swapped": computeMAC(testSecret, labelDialer, 2, 1, nd, na),
		"nonceD":  computeMAC(testSecret, labelDialer, 1, 2, newNonce(), na),
		"nonceA":  computeMAC(testSecret, labelDialer, 1, 2, nd, newNonce()),
	}
	for name, mac := range variants {
		assert.False(t, hmac.Equal(base[:], mac[:]), "changing %s changes the MAC", name)
	}
}

func TestHandshakeFrames_RoundTrip(t *testing.T) {
	h := hello{Version: Version, From: 7, To: 0xfffffffe, Nonce: newNonce()}
	body, err := readFrame(bytes.NewReader(h.frame(nil)), maxHandshakeFrame)
	require.NoError(t, err)
	got, err := decodeHello(body)
	require.NoError(t, err)
	assert.Equal(t, h, got)

	c := challenge{Nonce: newNonce(), MAC: computeMAC(testSecret, labelAcceptor, 1, 2, newNonce(), newNonce())}
	body, err = readFrame(bytes.NewReader(c.frame(nil)), maxHandshakeFrame)
	require.NoError(t, err)
	gotC, err := decodeChallenge(body)
	require.NoError(t, err)
	assert.Equal(t, c, gotC)

	body, err = readFrame(bytes.NewReader(proofFrame(nil, c.MAC)), maxHandshakeFrame)
	require.NoError(t, err)
	gotP, err := decodeProof(body)
	require.NoError(t, err)
	assert.Equal(t, c.MAC, gotP)

	long := bytes.Repeat([]byte("x"), 2*maxReason)
	body, err = readFrame(bytes.NewReader(errorFrame(nil, string(long))), maxHandshakeFrame)
	require.NoError(t, err, "an error frame always fits a handshake frame")
	var refused *RefusedError
	require.ErrorAs(t, decodeOK(body), &refused)
	assert.Len(t, refused.Reason, maxReason)

	body, err = readFrame(bytes.NewReader(errorFrame(nil, "bad\x00\nreason\xff")), maxHandshakeFrame)
	require.NoError(t, err)
	require.ErrorAs(t, refusal(body), &refused)
	assert.Equal(t, "bad??reason?", refused.Reason, "control bytes from the network are neutralised")
}

func TestDecoders_RejectWrongFrames(t *testing.T) {
	h := hello{Version: Version, From: 1, To: 2}.frame(nil)[frameHeaderLen:]
	c := challenge{}.frame(nil)[frameHeaderLen:]
	p := proofFrame(nil, [macLen]byte{})[frameHeaderLen:]
	tests := []struct {
		name   string
		decode func([]byte) error
		bodies [][]byte
	}{
		{"hello", func(b []byte) error { _, err := decodeHello(b); return err }, [][]byte{nil, c, p, h[:len(h)-1], append(h, 0)}},
		{"challenge", func(b []byte) error { _, err := decodeChallenge(b); return err }, [][]byte{nil, h, p, c[:len(c)-1]}},
		{"proof", func(b []byte) error { _, err := decodeProof(b); return err }, [][]byte{nil, h, c, append(p, 0)}},
		{"ok", decodeOK, [][]byte{nil, h, {frameOK, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, b := range tt.bodies {
				assert.ErrorIs(t, tt.decode(b), ErrMalformed, "body %x", b)
			}
		})
	}
}
