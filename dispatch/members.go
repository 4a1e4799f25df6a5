package dispatch

// Reading a JSON object's members by their exact keys. encoding/json
// matches keys case-insensitively and lets a repeated key win silently,
// while the MCP SDKs upstream match exactly: decoding with it would let a
// body such as {"params":{"name":"echo","Name":"add"}} show one tool name
// to Caddy (Mcp-Name) and another to the server.

import (
	"errors"
	"fmt"
	"strings"
)

var errDuplicateKey = errors.New("duplicate key")

// sameButCase refuses a key that an upstream decoding with Go's
// encoding/json would take for one of keys (it matches keys without
// regard to case, Unicode folding included, and lets the last win) while
// the bridge, reading exact keys, would not.
func sameButCase(key string, keys ...string) error {
	for _, k := range keys {
		if key != k && strings.EqualFold(key, k) {
			return fmt.Errorf("key %q differs from %q only in case", key, k)
		}
	}
	return nil
}
