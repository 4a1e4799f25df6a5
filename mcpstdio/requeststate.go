package mcpstdio

// requestState: what a 2026-07-28 client carries from an
// InputRequiredResult to its retry. The bridge seals it (AES-GCM, with
// state_secret or a random key Caddy keeps) so that a client can neither
// read the server's request ids in it nor forge one; it names the
// principal (the process_key value), the process, the request awaiting
// input, the round, the server's requests and an expiry. A state is good
// for one retry: the retry takes the request it names (inputs.go).

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"

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
