package cluster

// What crosses Redis is sealed: an inbox entry carries a client's
// request headers (its Authorization among them) and body, a control
// message what the admin API pushes. Whoever reads Redis, or listens on
// its channels, must learn none of it, and must not be able to forge
// any. The small metadata the Lua scripts read (session and entry ids,
// owners, epochs, identities, sizes) stays readable: sealing it would
// make every script a round trip through Go.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a cluster secret once decoded: an AES-256 key.
const KeySize = 32

// keyIDLen is the length of a key id: 4 bytes of a hash, in hex.
const keyIDLen = 8

// nonceSize is AES-GCM's standard nonce: 96 random bits, which stay
// unique for far more messages than a key will seal before rotation.
const nonceSize = 12

// ErrUnreadable is what opening a sealed value fails with: it was sealed
// by a key this instance does not have, or altered.
var ErrUnreadable = errors.New("cluster: sealed by an unknown key, or altered")

// Keyring seals with the current key and opens with the current key or
// any previous one: rotating is adding a new secret as current and
// keeping the old one as previous until no instance seals with it, and
// no entry it sealed waits in Redis.
type Keyring struct {
	current *sealKey
	byID    map[string]*sealKey
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// ParseKey decodes one secret: the standard or URL-safe base64 (padded
// or not) of 32 bytes, as `openssl rand -base64 32` prints them. A
// random key, not a passphrase: a key derived from a phrase is only as
// strong as the phrase, and whoever can read Redis can try phrases
// against its entries offline.
func ParseKey(secret string) ([]byte, error) {
	s := strings.TrimSpace(secret)
	if s == "" {
		return nil, errors.New("empty secret")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("the secret decodes to %d bytes; want the base64 of %d random bytes (openssl rand -base64 32)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("the secret is not base64; want the base64 of %d random bytes (openssl rand -base64 32)", KeySize)
}

// KeyID names a key without revealing it: 4 bytes of a SHA-256 of it,
// in hex. Each sealed value starts with its key's id, so that an
// instance knows which of its keys opens it, and an operator which
// instances still seal with an old one.
func KeyID(key []byte) string {
	h := sha256.Sum256(append([]byte("mcp_sse cluster key id\x00"), key...))
	return hex.EncodeToString(h[:keyIDLen/2])
}

// NewKeyring makes the keyring of the current secret and the previous
// ones, which only open.
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	kr := &Keyring{byID: map[string]*sealKey{}}
	add := func(what, secret string) (*sealKey, error) {
		b, err := ParseKey(secret)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		id := KeyID(b)
		if _, dup := kr.byID[id]; dup {
			return nil, fmt.Errorf("%s: the same key (id %s) is given twice", what, id)
		}
		block, err := aes.NewCipher(b)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k := &sealKey{id: id, aead: aead}
		kr.byID[id] = k
		return k, nil
	}
	var err error
	if kr.current, err = add("secret", current); err != nil {
		return nil, err
	}
	for i, p := range previous {
		if _, err := add(fmt.Sprintf("previous secret %d", i+1), p); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// ID is the id of the key that seals.
func (kr *Keyring) ID() string { return kr.current.id }

// seal encrypts plain for the place context names (an inbox's session,
// the control channel), so that a sealed value copied elsewhere does not
// open: key id, nonce, then the ciphertext and its tag.
func (kr *Keyring) seal(plain []byte, context string) []byte {
	k := kr.current
	out := make([]byte, keyIDLen+nonceSize, keyIDLen+nonceSize+len(plain)+k.aead.Overhead())
	copy(out, k.id)
	_, _ = rand.Read(out[keyIDLen:]) // never fails (crypto/rand's contract)
	return k.aead.Seal(out, out[keyIDLen:], plain, []byte(context))
}

// open decrypts what seal made for context. It returns the key id the
// value names along with ErrUnreadable when no key of the ring opens it.
func (kr *Keyring) open(sealed []byte, context string) (plain []byte, keyID string, err error) {
	if len(sealed) < keyIDLen+nonceSize {
		return nil, "", ErrUnreadable
	}
	keyID = string(sealed[:keyIDLen])
	k, ok := kr.byID[keyID]
	if !ok {
		return nil, keyID, ErrUnreadable
	}
	nonce := sealed[keyIDLen : keyIDLen+nonceSize]
	plain, err = k.aead.Open(nil, nonce, sealed[keyIDLen+nonceSize:], []byte(context))
	if err != nil {
		return nil, keyID, ErrUnreadable
	}
	return plain, keyID, nil
}

// The contexts sealed values are bound to.
func inboxContext(session string) string { return "mcp_sse inbox\x00" + session }

func bridgeContext(session string) string { return "mcp_sse bridge\x00" + session }

const controlContext = "mcp_sse control"

// Seal encrypts plain with the current key, bound to context: a value
// sealed for one context does not open in another. For values other
// packages hand to clients or peers (mcp_stdio's requestState).
func (kr *Keyring) Seal(plain []byte, context string) []byte { return kr.seal(plain, context) }

// Open decrypts what Seal made for context, with any key of the ring; it
// fails with ErrUnreadable on a value altered, forged, sealed by a key
// the ring lacks, or for another context.
func (kr *Keyring) Open(sealed []byte, context string) ([]byte, error) {
	plain, _, err := kr.open(sealed, context)
	return plain, err
}

// RandomKeyring is a keyring of one fresh random key: for values that
// only this instance, in this run, has to open.
func RandomKeyring() *Keyring {
	b := make([]byte, KeySize)
	_, _ = rand.Read(b)
	kr, err := NewKeyring(base64.StdEncoding.EncodeToString(b))
	if err != nil { // not reached: the key is well-formed
		panic(err)
	}
	return kr
}
