package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Version is the handshake and framing version this package speaks.
const Version uint16 = 1

// Handshake frame types: the first byte of a handshake frame's body.
const (
	frameHello     byte = 1
	frameChallenge byte = 2
	frameProof     byte = 3
	frameOK        byte = 4
	frameError     byte = 5
)

const (
	nonceLen = 32
	macLen   = sha256.Size

	helloLen     = 1 + 2 + 4 + 4 + nonceLen
	challengeLen = 1 + nonceLen + macLen
	proofLen     = 1 + macLen
	okLen        = 1

	// maxReason bounds the reason in an error frame.
	maxReason = 100
	// maxHandshakeFrame bounds every handshake frame, so that a stranger
	// cannot make the acceptor allocate more than this before proving
	// anything.
	maxHandshakeFrame = 128
)

// Reasons sent in error frames. They say which rule was broken, no more.
const (
	reasonMalformed = "malformed handshake"
	reasonVersion   = "unsupported version"
	reasonWrongPeer = "wrong peer id"
	reasonAuth      = "authentication failed"
)

// MAC labels; distinct so that one side's MAC is never the other's.
const (
	labelAcceptor = "acceptor"
	labelDialer   = "dialer"
)

type nonce [nonceLen]byte

type hello struct {
	Version  uint16
	From, To NodeID
	Nonce    nonce
}

func (h hello) frame(dst []byte) []byte {
	body := make([]byte, 0, helloLen)
	body = append(body, frameHello)
	body = binary.BigEndian.AppendUint16(body, h.Version)
	body = binary.BigEndian.AppendUint32(body, uint32(h.From))
	body = binary.BigEndian.AppendUint32(body, uint32(h.To))
	body = append(body, h.Nonce[:]...)
	return appendFrame(dst, body)
}

func decodeHello(b []byte) (hello, error) {
	var h hello
	if len(b) != helloLen || b[0] != frameHello {
		return h, fmt.Errorf("%w: want hello (%d bytes), got %s", ErrMalformed, helloLen, describe(b))
	}
	h.Version = binary.BigEndian.Uint16(b[1:])
	h.From = NodeID(binary.BigEndian.Uint32(b[3:]))
	h.To = NodeID(binary.BigEndian.Uint32(b[7:]))
	copy(h.Nonce[:], b[11:])
	return h, nil
}

type challenge struct {
	Nonce nonce
	MAC   [macLen]byte
}

func (c challenge) frame(dst []byte) []byte {
	body := make([]byte, 0, challengeLen)
	body = append(body, frameChallenge)
	body = append(body, c.Nonce[:]...)
	body = append(body, c.MAC[:]...)
	return appendFrame(dst, body)
}

func decodeChallenge(b []byte) (challenge, error) {
	var c challenge
	if err := refusal(b); err != nil {
		return c, err
	}
	if len(b) != challengeLen || b[0] != frameChallenge {
		return c, fmt.Errorf("%w: want challenge (%d bytes), got %s", ErrMalformed, challengeLen, describe(b))
	}
	copy(c.Nonce[:], b[1:])
	copy(c.MAC[:], b[1+nonceLen:])
	return c, nil
}

func proofFrame(dst []byte, mac [macLen]byte) []byte {
	body := make([]byte, 0, proofLen)
	body = append(body, frameProof)
	body = append(body, mac[:]...)
	return appendFrame(dst, body)
}

func decodeProof(b []byte) ([macLen]byte, error) {
	var mac [macLen]byte
	if err := refusal(b); err != nil {
		return mac, err
	}
	if len(b) != proofLen || b[0] != frameProof {
		return mac, fmt.Errorf("%w: want proof (%d bytes), got %s", ErrMalformed, proofLen, describe(b))
	}
	copy(mac[:], b[1:])
	return mac, nil
}

func okFrame(dst []byte) []byte { return appendFrame(dst, []byte{frameOK}) }

func decodeOK(b []byte) error {
	if err := refusal(b); err != nil {
		return err
	}
	if len(b) != okLen || b[0] != frameOK {
		return fmt.Errorf("%w: want ok, got %s", ErrMalformed, describe(b))
	}
	return nil
}

func errorFrame(dst []byte, reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	return appendFrame(dst, append([]byte{frameError}, reason...))
}

// refusal returns a *RefusedError if b is an error frame, else nil.
func refusal(b []byte) error {
	if len(b) == 0 || b[0] != frameError {
		return nil
	}
	reason := b[1:]
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	// The reason comes from the network: keep it printable for logs.
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, string(reason))
	return &RefusedError{Reason: clean}
}

// describe names a handshake frame for an error message without echoing it.
func describe(b []byte) string {
	if len(b) == 0 {
		return "an empty frame"
	}
	return fmt.Sprintf("type %d (%d bytes)", b[0], len(b))
}

// computeMAC is HMAC-SHA256(secret, label|from|to|nonceD|nonceA).
func computeMAC(secret []byte, label string, from, to NodeID, nonceD, nonceA nonce) [macLen]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	var ids [8]byte
	binary.BigEndian.PutUint32(ids[:4], uint32(from))
	binary.BigEndian.PutUint32(ids[4:], uint32(to))
	m.Write(ids[:])
	m.Write(nonceD[:])
	m.Write(nonceA[:])
	var out [macLen]byte
	m.Sum(out[:0])
	return out
}

func newNonce() nonce {
	var n nonce
	rand.Read(n[:]) // never returns an error (crypto/rand, Go 1.24+)
	return n
}

// handshaker holds what both sides of a handshake need.
type handshaker struct {
	self   NodeID
	secret []byte
	// known reports whether id is a replica of the cluster other than self.
	known func(id NodeID) bool
}

// accept runs the acceptor's side of the handshake on a connection whose
// first bytes are Magic, and returns the authenticated peer's id. On a
// protocol violation it sends an error frame (best effort) before
// returning; w's errors then matter less than the violation, which is what
// it returns.
func (h handshaker) accept(r io.Reader, w io.Writer) (NodeID, error) {
	var magic [len(Magic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return 0, fmt.Errorf("read magic: %w", err)
	}
	if string(magic[:]) != Magic {
		return 0, ErrNotPeer
	}
	fr := frameReader{r: r}
	refuse := func(reason string, err error) (NodeID, error) {
		w.Write(errorFrame(nil, reason)) // best effort: we are closing anyway
		return 0, err
	}

	b, err := fr.read(maxHandshakeFrame)
	if errors.Is(err, ErrFrameTooLarge) {
		return refuse(reasonMalformed, fmt.Errorf("read hello: %w", err))
	}
	if err != nil {
		return 0, fmt.Errorf("read hello: %w", err)
	}
	hi, err := decodeHello(b)
	if err != nil {
		return refuse(reasonMalformed, err)
	}
	if hi.Version != Version {
		return refuse(reasonVersion, fmt.Errorf("%w: peer speaks %d, we speak %d", ErrVersion, hi.Version, Version))
	}
	if hi.To != h.self {
		return refuse(reasonWrongPeer, fmt.Errorf("%w: peer %d addressed replica %d, we are %d", ErrWrongPeer, hi.From, hi.To, h.self))
	}
	if !h.known(hi.From) {
		return refuse(reasonWrongPeer, fmt.Errorf("%w: unknown peer %d", ErrWrongPeer, hi.From))
	}

	ch := challenge{Nonce: newNonce()}
	ch.MAC = computeMAC(h.secret, labelAcceptor, hi.From, hi.To, hi.Nonce, ch.Nonce)
	if _, err := w.Write(ch.frame(nil)); err != nil {
		return 0, fmt.Errorf("write challenge: %w", err)
	}

	b, err = fr.read(maxHandshakeFrame)
	if errors.Is(err, ErrFrameTooLarge) {
		return refuse(reasonMalformed, fmt.Errorf("read proof from peer %d: %w", hi.From, err))
	}
	if err != nil {
		return 0, fmt.Errorf("read proof from peer %d: %w", hi.From, err)
	}
	got, err := decodeProof(b)
	if errors.Is(err, ErrRefused) {
		// The dialer refused our challenge: it has another secret.
		return 0, fmt.Errorf("peer %d: %w", hi.From, err)
	}
	if err != nil {
		return refuse(reasonMalformed, fmt.Errorf("decode proof from peer %d: %w", hi.From, err))
	}
	want := computeMAC(h.secret, labelDialer, hi.From, hi.To, hi.Nonce, ch.Nonce)
	if !hmac.Equal(got[:], want[:]) {
		return refuse(reasonAuth, fmt.Errorf("%w: bad proof from peer %d", ErrAuth, hi.From))
	}
	if _, err := w.Write(okFrame(nil)); err != nil {
		return 0, fmt.Errorf("write ok to peer %d: %w", hi.From, err)
	}
	return hi.From, nil
}

// dial runs the dialer's side of the handshake with replica to.
func (h handshaker) dial(r io.Reader, w io.Writer, to NodeID) error {
	hi := hello{Version: Version, From: h.self, To: to, Nonce: newNonce()}
	if _, err := w.Write(hi.frame([]byte(Magic))); err != nil {
		return fmt.Errorf("write hello: %w", err)
	}
	fr := frameReader{r: r}
	b, err := fr.read(maxHandshakeFrame)
	if err != nil {
		return fmt.Errorf("read challenge: %w", err)
	}
	ch, err := decodeChallenge(b)
	if err != nil {
		return fmt.Errorf("decode challenge: %w", err)
	}
	want := computeMAC(h.secret, labelAcceptor, h.self, to, hi.Nonce, ch.Nonce)
	if !hmac.Equal(ch.MAC[:], want[:]) {
		w.Write(errorFrame(nil, reasonAuth)) // best effort: we are closing anyway
		return fmt.Errorf("%w: bad challenge from replica %d", ErrAuth, to)
	}
	mac := computeMAC(h.secret, labelDialer, h.self, to, hi.Nonce, ch.Nonce)
	if _, err := w.Write(proofFrame(nil, mac)); err != nil {
		return fmt.Errorf("write proof: %w", err)
	}
	b, err = fr.read(maxHandshakeFrame)
	if err != nil {
		return fmt.Errorf("read ok: %w", err)
	}
	if err := decodeOK(b); err != nil {
		return fmt.Errorf("decode ok: %w", err)
	}
	return nil
}
