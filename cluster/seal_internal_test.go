package cluster

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, KeySize)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestParseKey(t *testing.T) {
	raw := make([]byte, KeySize)
	for i := range raw {
		raw[i] = byte(i)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := ParseKey(" " + enc.EncodeToString(raw) + "\n"); err != nil || !bytes.Equal(b, raw) {
			t.Errorf("ParseKey(%q) = %x, %v", enc.EncodeToString(raw), b, err)
		}
	}
	for _, bad := range []struct{ secret, want string }{
		{"", "empty"},
		{"  ", "empty"},
		{"not base64 at all!", "not base64"},
		{base64.StdEncoding.EncodeToString(raw[:16]), "decodes to 16 bytes"},
		{base64.StdEncoding.EncodeToString(append(raw, 1)), "decodes to 33 bytes"},
		{"correct horse battery staple", "not base64"},
	} {
		_, err := ParseKey(bad.secret)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseKey(%q) = %v, want an error saying %q", bad.secret, err, bad.want)
			continue
		}
		if bad.secret != "" && strings.TrimSpace(bad.secret) != "" && strings.Contains(err.Error(), bad.secret) {
			t.Errorf("ParseKey's error shows the secret: %v", err)
		}
	}
}

func TestKeyringSealsAndRotates(t *testing.T) {
	k1, k2 := newSecret(t), newSecret(t)
	old, err := NewKeyring(k1)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewKeyring(k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"h":{"Authorization":["Bearer s3cr3t"]},"b":"hello"}`)

	sealed := old.seal(plain, inboxContext("s-1"))
	if bytes.Contains(sealed, []byte("s3cr3t")) || bytes.Contains(sealed, []byte("hello")) {
		t.Fatalf("the sealed value shows its content: %q", sealed)
	}
	if id := string(sealed[:keyIDLen]); id != old.ID() {
		t.Errorf("sealed value names key %q, want the sealing key's id %q", id, old.ID())
	}
	if again := old.seal(plain, inboxContext("s-1")); bytes.Equal(again, sealed) {
		t.Error("two seals of the same value are equal: the nonce is not fresh")
	}
	// The rotated ring opens what the old key sealed (previous secret)...
	if got, id, err := rotated.open(sealed, inboxContext("s-1")); err != nil || !bytes.Equal(got, plain) || id != old.ID() {
		t.Errorf("the rotated ring opens the old key's value: %q %q %v", got, id, err)
	}
	// ...and seals with the new one, which the old ring does not have.
	fresh := rotated.seal(plain, inboxContext("s-1"))
	if string(fresh[:keyIDLen]) != rotated.ID() || rotated.ID() == old.ID() {
		t.Errorf("the rotated ring seals with key %q, want its current %q", fresh[:keyIDLen], rotated.ID())
	}
	if _, id, err := old.open(fresh, inboxContext("s-1")); !errors.Is(err, ErrUnreadable) || id != rotated.ID() {
		t.Errorf("a ring without the new key opened its value: id %q, %v", id, err)
	}
	// Bound to its place: another session's inbox, or the control
	// channel, does not open it.
	if _, _, err := old.open(sealed, inboxContext("s-2")); !errors.Is(err, ErrUnreadable) {
		t.Errorf("an entry moved to another session's inbox opened: %v", err)
	}
	if _, _, err := old.open(sealed, controlContext); !errors.Is(err, ErrUnreadable) {
		t.Errorf("an inbox entry opened as a control message: %v", err)
	}
	// Altered: refused.
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1
	if _, _, err := old.open(altered, inboxContext("s-1")); !errors.Is(err, ErrUnreadable) {
		t.Errorf("an altered value opened: %v", err)
	}
	for _, short := range [][]byte{nil, []byte("m "), sealed[:keyIDLen+nonceSize-1]} {
		if _, _, err := old.open(short, inboxContext("s-1")); !errors.Is(err, ErrUnreadable) {
			t.Errorf("open(%q) = %v, want ErrUnreadable", short, err)
		}
	}
}

func TestNewKeyringRefuses(t *testing.T) {
	k := newSecret(t)
	if _, err := NewKeyring(k, k); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("the same key as current and previous: %v", err)
	}
	if _, err := NewKeyring(""); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("no current secret: %v", err)
	}
	if _, err := NewKeyring(k, "short"); err == nil || !strings.Contains(err.Error(), "previous secret 1") {
		t.Errorf("a bad previous secret: %v", err)
	}
}

// testKeyring is a keyring of a new random secret.
func testKeyring(t *testing.T) *Keyring {
	t.Helper()
	kr, err := NewKeyring(newSecret(t))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
