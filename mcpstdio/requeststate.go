package mcpstdio

// requestState: what a 2026-07-28 client carries from an
// InputRequiredResult to its retry. The bridge seals it (AES-GCM, with
// state_secret or a random key Caddy keeps) so that a client can neither
// read the server's request ids in it nor forge one; it names the
// principal (the process_key value), the process, the request awaiting
// input, the round, the server's requests and an expiry. A state is good
// for one retry: once used, it is spent until it expires.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
)

// stateContext binds a sealed requestState to its use: a value sealed for
// anything else by the same key does not open as one.
const stateContext = "mcp_stdio requestState"

// requestState is the sealed content.
type requestState struct {
	Principal string `json:"p"`
	Process   string `json:"s"`
	// Call is the id the bridge gave the request on the process.
	Call  json.RawMessage `json:"c"`
	Round int             `json:"r"`
	// Inputs are the server's request ids, by the keys the client got.
	Inputs  map[string]json.RawMessage `json:"i"`
	Expires int64                      `json:"e"` // unix seconds
	Nonce   string                     `json:"n"`
}

func sealState(ring *cluster.Keyring, st requestState) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	st.Nonce = hex.EncodeToString(b[:])
	plain, _ := json.Marshal(st)
	return base64.RawURLEncoding.EncodeToString(ring.Seal(plain, stateContext))
}

var errForged = errors.New("requestState was not issued by this server (altered, forged, or sealed by another key)")

func openState(ring *cluster.Keyring, s string) (requestState, error) {
	var st requestState
	sealed, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > maxStateLen {
		return st, errForged
	}
	plain, err := ring.Open(sealed, stateContext)
	if err != nil || json.Unmarshal(plain, &st) != nil || st.Nonce == "" {
		return st, errForged
	}
	return st, nil
}

// maxStateLen bounds the requestState the bridge reads: its own are far
// smaller (generation.MaxInputRequests ids, each bounded by a line).
const maxStateLen = 1 << 20

// maxSpent bounds the states remembered as spent. Each is a nonce and an
// expiry (about 80 bytes with the map's overhead): 64 Ki of them is 5 MiB.
// Past it the bridge issues no more states until some expire: a retry
// would otherwise be replayable.
const maxSpent = 64 << 10

// spentSet remembers the nonces of used states until their expiry.
type spentSet struct {
	mu  sync.Mutex
	max int
	m   map[string]time.Time
}

func newSpentSet(max int) *spentSet { return &spentSet{max: max, m: make(map[string]time.Time)} }

// spent reports whether nonce was used.
func (s *spentSet) spent(nonce string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[nonce]
	return ok
}

// spend records nonce as used until expires; false if it was already, or
// the set is full of states not yet expired.
func (s *spentSet) spend(nonce string, expires time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[nonce]; ok {
		return false
	}
	if len(s.m) >= s.max {
		s.prune(time.Now())
		if len(s.m) >= s.max {
			return false
		}
	}
	s.m[nonce] = expires
	return true
}

// room reports whether a state issued now could be spent later.
func (s *spentSet) room() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) < s.max {
		return true
	}
	s.prune(time.Now())
	return len(s.m) < s.max
}

func (s *spentSet) prune(now time.Time) {
	for n, exp := range s.m {
		if now.After(exp) {
			delete(s.m, n)
		}
	}
}
