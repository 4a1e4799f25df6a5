package mcpauth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// TestAuthRealClients: the TypeScript SDK, given nothing but the URL and
// its client credentials, is refused, discovers from the 401 on where and
// how to log in, gets a token for this resource from the real
// authorization server, and calls tools through mcp_sse (to a Streamable
// HTTP upstream through reverse_proxy) and through mcp_stdio, over both
// transports.
func TestAuthRealClients(t *testing.T) {
	e := start(t, "")
	for _, tc := range []struct{ path, kind string }{
		{"/sse", "sse"},
		{"/mcp", "streamable"},
		{"/stdio/sse", "sse"},
		{"/stdio/mcp", "streamable"},
	} {
		t.Run(tc.kind+tc.path, func(t *testing.T) {
			got, err := e.tsClient(e.base+tc.path, tc.kind, "hello "+tc.path)
			if err != nil {
				t.Fatalf("node client: %v", err)
			}
			if got["text"] != "hello "+tc.path {
				t.Errorf("echo: %v", got)
			}
			if aud, _ := got["aud"].(string); !oauth.AudienceNames([]string{aud}, e.resource()) {
				t.Errorf("the client's token is for %q, not %s", aud, e.resource())
			}
			if got["sub"] != authservertest.Client {
				t.Errorf("sub: %v", got["sub"])
			}
		})
	}
	if n := e.as.Stats().Token; n < 4 {
		t.Errorf("the authorization server issued %d tokens, want one per client", n)
	}
}

// TestAuthCodeFlowRealClient: the TypeScript SDK as an interactive
// client (auth_code_client.mjs): from the 401 on it discovers the
// authorization server, sends a person through the real server's login
// and consent (the script plays the browser, signing in as a name of its
// own) with the authorization-code grant, PKCE S256 and this resource as
// the resource indicator, trades the code for a token, and calls tools
// through mcp_sse to the Streamable HTTP upstream, over both transports;
// then it refreshes the token and calls again. The token names the
// person and this resource, the mcp_sse session carries the person as
// its identity, and the token never reaches the upstream.
func TestAuthCodeFlowRealClient(t *testing.T) {
	e := start(t, "")
	for _, tc := range []struct{ path, kind, login string }{
		{"/sse", "sse", "alice"},
		{"/mcp", "streamable", "bob"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			text := "hello " + tc.login
			seenBefore := len(e.upstream.Seen())
			n := e.codeClient(t, tc.path, tc.kind, tc.login, text)
			defer n.finish()
			got := n.result
			if got.Text != text || got.Again != text+" again" || !slices.Contains(got.Tools, "echo") {
				t.Errorf("tool calls: %+v", got)
			}
			if got.Sub != tc.login {
				t.Errorf("the token's sub is %q, want the login name %q", got.Sub, tc.login)
			}
			if !oauth.AudienceNames([]string{got.Aud}, e.resource()) || !oauth.AudienceNames([]string{got.RefreshedAud}, e.resource()) {
				t.Errorf("the tokens are for %q and (refreshed) %q, not %s", got.Aud, got.RefreshedAud, e.resource())
			}
			if got.ClientID != "mcp-web" || got.Scope != "mcp:tools" {
				t.Errorf("token client_id %q scope %q", got.ClientID, got.Scope)
			}
			rq := got.Request
			if rq.ClientID != "mcp-web" || rq.Resource != e.resource() || rq.CodeChallengeMethod != "S256" || !rq.HasCodeChallenge || rq.Scope != "mcp:tools" {
				t.Errorf("the authorization request: %+v", rq)
			}
			if strings.Join(got.Prompts, " ") != "login consent" || got.Authorizations != 1 {
				t.Errorf("the person went through %v in %d authorizations, want login and consent once", got.Prompts, got.Authorizations)
			}
			if !got.Refreshed || got.RefreshedSub != tc.login {
				t.Errorf("refresh: %v, sub %q", got.Refreshed, got.RefreshedSub)
			}
			if tc.kind == "sse" { // Streamable HTTP goes through mcp_sse to the upstream, no session of its own
				if ids := e.sessionIdentities(t); len(ids) != 1 || ids[0] != tc.login {
					t.Errorf("mcp_sse sessions' identities %q, want the login name %q", ids, tc.login)
				}
			}
			if seen := e.upstream.Seen()[seenBefore:]; len(seen) > 0 {
				t.Errorf("the client's token reached the upstream, %d times: %.40q…", len(seen), seen[0])
			}
		})
	}
}

// codeResult is what auth_code_client.mjs prints.
type codeResult struct {
	Tools          []string `json:"tools"`
	Text           string   `json:"text"`
	Again          string   `json:"again"`
	Sub            string   `json:"sub"`
	Aud            string   `json:"aud"`
	Scope          string   `json:"scope"`
	ClientID       string   `json:"client_id"`
	Prompts        []string `json:"prompts"`
	Authorizations int      `json:"authorizations"`
	Request        struct {
		ClientID            string `json:"client_id"`
		Resource            string `json:"resource"`
		CodeChallengeMethod string `json:"code_challenge_method"`
		HasCodeChallenge    bool   `json:"has_code_challenge"`
		Scope               string `json:"scope"`
	} `json:"request"`
	Refreshed    bool   `json:"refreshed"`
	RefreshedSub string `json:"refreshed_sub"`
	RefreshedAud string `json:"refreshed_aud"`
}

// codeNode is a running auth_code_client.mjs that printed its result and
// holds its session open until finish.
type codeNode struct {
	t      *testing.T
	result codeResult
	stdin  io.WriteCloser
	cancel context.CancelFunc
	exited chan error // cmd.Wait's error, once stdout is read to its end
	stderr *bytes.Buffer
}

// codeClient runs auth_code_client.mjs against e.base+path and waits for
// its result line.
func (e *env) codeClient(t *testing.T, path, kind, login, text string) *codeNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "node", filepath.Join(authservertest.Dir(t), "auth_code_client.mjs"),
		e.base+path, kind, e.as.Issuer(), login, text)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &codeNode{t: t, stdin: stdin, cancel: cancel, exited: make(chan error, 1), stderr: &bytes.Buffer{}}
	cmd.Stderr = n.stderr // read only once exited has answered
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
			}
		}
		close(lines)
		n.exited <- cmd.Wait()
	}()
	const resultWait = 60 * time.Second
	deadline := time.After(resultWait)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				err := <-n.exited
				t.Fatalf("node client exited before its result (%v):\n%s", err, n.stderr)
			}
			if !strings.HasPrefix(line, "{") {
				t.Logf("node: %s", line)
				continue
			}
			if err := json.Unmarshal([]byte(line), &n.result); err != nil {
				n.kill()
				t.Fatalf("node client printed %q: %v", line, err)
			}
			go func() { // the rest of stdout, so the reader never blocks
				for range lines {
				}
			}()
			return n
		case <-deadline:
			n.kill()
			t.Fatalf("no result from the node client within %s:\n%s", resultWait, n.stderr)
		}
	}
}

// kill ends the client and waits until it has exited.
func (n *codeNode) kill() {
	n.cancel()
	<-n.exited
}

// finish ends the client's stdin, so it closes its session and exits, and
// waits for that.
func (n *codeNode) finish() {
	n.t.Helper()
	_ = n.stdin.Close()
	const exitWait = 30 * time.Second
	select {
	case err := <-n.exited:
		if err != nil {
			n.t.Errorf("node client: %v\n%s", err, n.stderr)
		}
	case <-time.After(exitWait):
		n.kill()
		n.t.Errorf("the node client did not exit within %s of its stdin's end:\n%s", exitWait, n.stderr)
	}
}

// sessionIdentities are the identities of mcp_sse's live sessions.
func (e *env) sessionIdentities(t *testing.T) []string {
	t.Helper()
	r, err := (&http.Client{Timeout: 10 * time.Second}).Get(e.admin + "/mcp_sse/sessions")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var list struct {
		Sessions []struct {
			Identity string `json:"identity"`
		} `json:"sessions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&list); err != nil {
		t.Fatalf("sessions: %v", err)
	}
	ids := []string{}
	for _, s := range list.Sessions {
		ids = append(ids, s.Identity)
	}
	return ids
}

// TestAuthChallengeAndMetadata: a request without a token gets 401 with
// the challenge a client starts from, and the metadata it names lists
// this resource and its authorization server.
func TestAuthChallengeAndMetadata(t *testing.T) {
	e := start(t, "")
	r := e.do(http.MethodGet, "/sse", nil, "", false)
	want := `Bearer resource_metadata="` + e.base + `/.well-known/oauth-protected-resource", scope="mcp:tools"`
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != want {
		t.Fatalf("no token: %d %q, want 401 %q", r.status, r.header.Get("WWW-Authenticate"), want)
	}
	md := e.metadata("/.well-known/oauth-protected-resource", false, nil)
	if md.Resource != e.base || len(md.AuthorizationServers) != 1 || md.AuthorizationServers[0] != e.as.Issuer() ||
		strings.Join(md.ScopesSupported, " ") != "mcp:tools" || strings.Join(md.BearerMethodsSupported, " ") != "header" {
		t.Errorf("metadata: %+v", md)
	}
	// A browser client of another origin can read the challenge.
	r = e.do(http.MethodGet, "/sse", http.Header{"Origin": {"https://app.example"}}, "", false)
	if r.status != http.StatusUnauthorized || r.header.Get("Access-Control-Allow-Origin") != "*" ||
		r.header.Get("Access-Control-Expose-Headers") != "WWW-Authenticate" {
		t.Errorf("cross-origin 401: %d %v", r.status, r.header)
	}
	// The metadata needs no token, and browser clients of other origins
	// may read it.
	r = e.do(http.MethodGet, "/.well-known/oauth-protected-resource", http.Header{"Origin": {"https://app.example"}}, "", false)
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("cross-origin metadata: %d %v", r.status, r.header)
	}
}

// TestAuthResourcePath: a resource with a path has its metadata at the
// path-suffixed well-known URI (RFC 9728 section 3.1), which the
// challenge names; the root form answers too.
func TestAuthResourcePath(t *testing.T) {
	e := start(t, "resource_path /mcp")
	r := e.do(http.MethodPost, "/mcp", nil, "{}", false)
	if !strings.Contains(r.header.Get("WWW-Authenticate"), `resource_metadata="`+e.base+`/.well-known/oauth-protected-resource/mcp"`) {
		t.Errorf("challenge: %q", r.header.Get("WWW-Authenticate"))
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		if md := e.metadata(p, false, nil); md.Resource != e.base+"/mcp" {
			t.Errorf("%s: resource %q", p, md.Resource)
		}
	}
	// A token for the origin is not one for the resource /mcp.
	if r := e.do(http.MethodGet, "/headers", bearer(e.token("mcp:tools")), "", false); r.status != http.StatusUnauthorized {
		t.Errorf("a token for the origin on resource /mcp: %d", r.status)
	}
	tok := e.as.Token(authservertest.Client, e.base+"/mcp", "mcp:tools")
	if r := e.do(http.MethodGet, "/headers", bearer(tok), "", false); r.status != http.StatusOK {
		t.Errorf("a token for /mcp: %d %s", r.status, r.body)
	}
}

func (e *env) metadata(path string, fromProxy bool, header http.Header) oauth.ResourceMetadata {
	e.t.Helper()
	r := e.do(http.MethodGet, path, header, "", fromProxy)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var md oauth.ResourceMetadata
	if err := json.Unmarshal(r.body, &md); err != nil {
		e.t.Fatalf("GET %s: %v: %s", path, err, r.body)
	}
	return md
}

// TestAuthIdentityAndNoPassthrough: an accepted request goes on with the
// identity where Caddy's authentication puts it and without the token.
func TestAuthIdentityAndNoPassthrough(t *testing.T) {
	e := start(t, "")
	r := e.do(http.MethodGet, "/headers", bearer(e.token("mcp:tools")), "", false)
	if r.status != http.StatusOK {
		t.Fatalf("valid token: %d %s", r.status, r.body)
	}
	var seen http.Header
	_ = json.Unmarshal(r.body, &seen)
	if seen.Get("X-Auth-User") != authservertest.Client || seen.Get("X-Auth-Scope") != "mcp:tools" || seen.Get("X-Auth-Client") != authservertest.Client {
		t.Errorf("identity placeholders: %v", seen)
	}
	if seen.Get("Authorization") != "" {
		t.Errorf("the token went on: %q", seen.Get("Authorization"))
	}
}

// TestAuthForwardToken: forward_token names where the token goes on.
func TestAuthForwardToken(t *testing.T) {
	e := start(t, "forward_token X-Upstream-Token")
	tok := e.token("mcp:tools")
	r := e.do(http.MethodGet, "/headers", bearer(tok), "", false)
	var seen http.Header
	_ = json.Unmarshal(r.body, &seen)
	if r.status != http.StatusOK || seen.Get("X-Upstream-Token") != "Bearer "+tok || seen.Get("Authorization") != "" {
		t.Errorf("forward_token: %d %v", r.status, seen)
	}
}

// TestAuthRefusals: tokens a server must not accept, each refused with
// the challenge and counted by reason.
func TestAuthRefusals(t *testing.T) {
	e := start(t, "")
	key := e.as.SigningKey()
	now := time.Now()
	claims := func(k string, v any) map[string]any {
		c := map[string]any{"iss": e.as.Issuer(), "sub": "alice", "aud": e.resource() + "/", "scope": "mcp:tools",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	huge := strings.Repeat("a", 4<<20) // 4 MiB; Caddy's max_header_size is raised to 16MB here
	for _, tc := range []struct {
		name   string
		token  string
		status int
		reason oauth.Reason
	}{
		{"valid (the server's key)", authservertest.Sign(t, key, claims("", nil)), http.StatusOK, ""},
		{"expired", authservertest.Sign(t, key, claims("exp", now.Add(-time.Hour).Unix())), http.StatusUnauthorized, oauth.ReasonExpired},
		{"not yet valid", authservertest.Sign(t, key, claims("nbf", now.Add(time.Hour).Unix())), http.StatusUnauthorized, oauth.ReasonNotYetValid},
		{"another resource's token", e.as.Token(authservertest.Client, "http://127.0.0.1:1/", "mcp:tools"), http.StatusUnauthorized, oauth.ReasonAudience},
		{"wrong issuer", authservertest.Sign(t, key, claims("iss", "http://127.0.0.1:1")), http.StatusUnauthorized, oauth.ReasonIssuer},
		{"alg none", authservertest.SignNone(claims("", nil), key.KeyID), http.StatusUnauthorized, oauth.ReasonAlgorithm},
		{"HMAC keyed with the public key", authservertest.SignHMACWithPublicKey(t, key, claims("", nil)), http.StatusUnauthorized, oauth.ReasonAlgorithm},
		{"unknown kid", authservertest.Sign(t, authservertest.NewKey(t), claims("", nil)), http.StatusUnauthorized, oauth.ReasonUnknownKey},
		{"4 MiB token", huge, http.StatusUnauthorized, oauth.ReasonTooLarge},
		{"scope missing", e.token("mcp:admin"), http.StatusForbidden, oauth.ReasonScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.refusedCount(tc.reason)
			r := e.do(http.MethodGet, "/headers", bearer(tc.token), "", false)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			challenge := r.header.Get("WWW-Authenticate")
			switch tc.status {
			case http.StatusUnauthorized:
				if !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, `resource_metadata="`+e.base) {
					t.Errorf("challenge %q", challenge)
				}
			case http.StatusForbidden:
				if !strings.Contains(challenge, `error="insufficient_scope"`) || !strings.Contains(challenge, `scope="mcp:tools"`) {
					t.Errorf("challenge %q", challenge)
				}
			}
			if tc.reason != "" {
				if got := e.refusedCount(tc.reason) - before; got != 1 {
					t.Errorf("refusals counted under reason %q: %v, want 1", tc.reason, got)
				}
			}
		})
	}
	if m := e.metrics(); !strings.Contains(m, "caddy_mcp_auth_tokens_accepted_total") {
		t.Errorf("metrics lack the accepted count")
	}
}

// refusedCount is the refusals counted under reason so far.
func (e *env) refusedCount(reason oauth.Reason) float64 {
	e.t.Helper()
	return e.metricValue(`caddy_mcp_auth_tokens_refused_total{reason="` + string(reason) + `"}`)
}

// metricValue is the value of one series (name{labels}) so far; 0 if it
// is not there yet.
func (e *env) metricValue(series string) float64 {
	e.t.Helper()
	prefix := series + " "
	for _, line := range strings.Split(e.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric line %q: %v", line, err)
			}
			return n
		}
	}
	return 0
}

// TestAuthBehindTLSProxy: behind a proxy that terminates TLS and is in
// trusted_proxies, the metadata and the challenge say https and the
// public host, and tokens for that resource are the ones accepted; the
// same X-Forwarded-* from a client that is not a trusted proxy count for
// nothing.
func TestAuthBehindTLSProxy(t *testing.T) {
	e := start(t, "")
	fwd := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"mcp.example.com"}}
	if md := e.metadata("/.well-known/oauth-protected-resource", true, fwd); md.Resource != "https://mcp.example.com" {
		t.Errorf("behind the trusted proxy: resource %q, want https://mcp.example.com", md.Resource)
	}
	r := e.do(http.MethodGet, "/sse", fwd, "", true)
	if want := `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource"`; !strings.Contains(r.header.Get("WWW-Authenticate"), want) {
		t.Errorf("challenge behind the trusted proxy: %q, want %s", r.header.Get("WWW-Authenticate"), want)
	}
	if md := e.metadata("/.well-known/oauth-protected-resource", false, fwd); md.Resource != e.base {
		t.Errorf("X-Forwarded-* from an untrusted client: resource %q, want %s", md.Resource, e.base)
	}
	public := e.as.Token(authservertest.Client, "https://mcp.example.com/", "mcp:tools")
	withToken := bearer(public)
	for k, v := range fwd {
		withToken[k] = v
	}
	if r := e.do(http.MethodGet, "/headers", withToken, "", true); r.status != http.StatusOK {
		t.Errorf("the public resource's token through the proxy: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/headers", withToken, "", false); r.status != http.StatusUnauthorized {
		t.Errorf("the public resource's token from an untrusted client claiming the public host: %d", r.status)
	}
}

// TestAuthServerDown: with the authorization server unreachable, no
// request goes through; the answer is 503 with Retry-After (the token
// may be fine), not 401.
func TestAuthServerDown(t *testing.T) {
	e := start(t, "timeout 2s")
	tok := e.token("mcp:tools")
	e.as.Stop()
	r := e.do(http.MethodGet, "/headers", bearer(tok), "", false)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("server down: %d %v, want 503 with Retry-After", r.status, r.header)
	}
	if !strings.Contains(e.metrics(), `caddy_mcp_auth_tokens_refused_total{reason="unavailable"}`) {
		t.Errorf("metrics lack the unavailable refusal")
	}
}

// TestAuthIntrospection: with introspection configured (its secret from
// the environment, as an operator would keep it), an opaque token the
// server issued for this resource is accepted and one for another
// resource refused; without it, opaque tokens are refused.
func TestAuthIntrospection(t *testing.T) {
	t.Setenv("MCP_TEST_INTROSPECTION_SECRET", authservertest.IntrospectSecret)
	e := start(t, "introspection "+authservertest.IntrospectClient+" {env.MCP_TEST_INTROSPECTION_SECRET}")
	opaque := e.as.Token(authservertest.OpaqueClient, e.resource()+"/", "mcp:tools")
	r := e.do(http.MethodGet, "/headers", bearer(opaque), "", false)
	var seen http.Header
	_ = json.Unmarshal(r.body, &seen)
	if r.status != http.StatusOK || seen.Get("X-Auth-User") != authservertest.OpaqueClient {
		t.Fatalf("opaque token: %d %s", r.status, r.body)
	}
	other := e.as.Token(authservertest.OpaqueClient, "http://127.0.0.1:1/", "mcp:tools")
	if r := e.do(http.MethodGet, "/headers", bearer(other), "", false); r.status != http.StatusUnauthorized {
		t.Errorf("an opaque token for another resource: %d", r.status)
	}
}

func TestAuthOpaqueWithoutIntrospection(t *testing.T) {
	e := start(t, "")
	opaque := e.as.Token(authservertest.OpaqueClient, e.resource()+"/", "mcp:tools")
	before := e.refusedCount(oauth.ReasonOpaqueNoIntr)
	if r := e.do(http.MethodGet, "/headers", bearer(opaque), "", false); r.status != http.StatusUnauthorized {
		t.Errorf("an opaque token without introspection: %d", r.status)
	}
	if got := e.refusedCount(oauth.ReasonOpaqueNoIntr) - before; got != 1 {
		t.Errorf("refusals counted as opaque: %v", got)
	}
}

// TestAuthSessionBoundToSubject: an mcp_sse session opened with a token
// carries the token's sub as its identity, with no identity setting.
func TestAuthSessionBoundToSubject(t *testing.T) {
	e := start(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+e.token("mcp:tools"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse with a token: %s", resp.Status)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n') // the stream is open once a frame arrives
	if err != nil {
		t.Fatalf("reading the stream: %v (%q)", err, line)
	}
	r, err := http.Get(e.admin + "/mcp_sse/sessions")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var list struct {
		Sessions []struct {
			Identity string `json:"identity"`
		} `json:"sessions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&list); err != nil || len(list.Sessions) != 1 {
		t.Fatalf("sessions: %+v %v", list, err)
	}
	if got := list.Sessions[0].Identity; got != authservertest.Client {
		t.Errorf("the session's identity is %q, want the token's sub %q", got, authservertest.Client)
	}
}
