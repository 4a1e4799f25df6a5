package dispatch

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestReplacerValues: the values a POST's handlers set are copied, not
// shared, and a change to caddy.Replacer's layout that would leave them
// behind is noticed here rather than by users whose upstream sees
// "{http.auth.user.id}".
func TestReplacerValues(t *testing.T) {
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "alice")
	repl.Set("http.auth.user.role", "admin")
	repl.Set("http.regexp.tenant.1", "acme")
	repl.Set("count", 3)
	repl.Set("flag", true)
	repl.Set("opaque", struct{}{})

	got := replacerValues(repl)
	want := map[string]any{
		"http.auth.user.id": "alice", "http.auth.user.role": "admin",
		"http.regexp.tenant.1": "acme", "count": int64(3), "flag": true,
	}
	if len(got) != len(want) {
		t.Fatalf("replacerValues = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("replacerValues[%q] = %v (%T), want %v", k, got[k], got[k], v)
		}
	}
	repl.Set("http.auth.user.id", "mallory")
	if got["http.auth.user.id"] != "alice" {
		t.Error("the copy changed with the replacer")
	}
}
