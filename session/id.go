package session

import "github.com/google/uuid"

// MaxIDLength is the longest session id accepted from a client.
const MaxIDLength = 128

// NewID returns a fresh session id: a random (version 4) UUID, drawn from
// crypto/rand, so ids cannot be guessed from one another.
func NewID() string {
	return uuid.NewString()
}

// ValidID reports whether id has the shape of a session id: 1 to 128
// characters of [A-Za-z0-9_-]. Anything else is refused before the store
// is consulted, so a malformed id never reaches a log line or a lookup.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// ShortID is the form of a session id fit for logs above debug level: its
// first 8 characters. A full id is the key to a session, so it is logged
// only at debug; the prefix is enough to tell sessions apart and to find
// one in the admin API's listing.
func ShortID(id string) string {
	if len(id) <= 8 {
		return id
	}
	return id[:8] + "…"
}
