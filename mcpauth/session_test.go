package mcpauth_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
)

// TestAuthSessionRefusesAnotherSubject: the attack is a second user of
// the same authorization server, with a good token of its own, posting
// into a session the first opened (its session id leaked): mcp_sse
// refuses it, since mcp_auth bound the session to the first token's sub;
// the owner's post is taken.
func TestAuthSessionRefusesAnotherSubject(t *testing.T) {
	e := start(t, "")
	signFor := func(sub string) string {
		c := map[string]any{"iss": e.as.Issuer(), "sub": sub, "aud": e.resource() + "/", "scope": "mcp:tools",
			"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix()}
		return authservertest.Sign(t, e.as.SigningKey(), c)
	}
	alice, bob := signFor("alice"), signFor("bob")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var endpoint string
	for rd := bufio.NewReader(resp.Body); endpoint == ""; {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading alice's stream: %v", err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "data:"); ok {
			endpoint = strings.TrimSpace(v)
		}
	}
	path := "/" + strings.TrimPrefix(endpoint, "/")
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	post := func(tok string) int {
		h := bearer(tok)
		h.Set("Content-Type", "application/json")
		return e.do(http.MethodPost, path, h, init, false).status
	}
	if got := post(bob); got != http.StatusForbidden {
		t.Errorf("bob posting into alice's session: %d, want 403", got)
	}
	if got := post(alice); got != http.StatusAccepted {
		t.Errorf("alice posting into her session: %d, want 202", got)
	}
}
