package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tsclientDir holds the authorization server the tests run
// (authserver.mjs: panva's oidc-provider) and its npm packages.
var tsclientDir = filepath.Join("..", "testdata", "tsclient")

// startOursAuth is ours/lean with mcp_auth in front, against the real
// authorization server: every request of the load carries a token it
// issued for the resource (client_credentials), which mcp_auth checks.
func (e *env) startOursAuth(name string) (*contender, error) {
	if _, err := os.Stat(filepath.Join(tsclientDir, "node_modules", "oidc-provider")); err != nil {
		cmd := exec.Command("npm", "ci", "--prefix", tsclientDir, "--no-audit", "--no-fund", "--loglevel=error")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm ci %s: %v\n%s", tsclientDir, err, out)
		}
	}
	keys := filepath.Join(e.dir, "authserver-keys.json")
	keygen := `const { generateKeyPairSync } = require("node:crypto");
const k = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
console.log(JSON.stringify({ keys: [{ ...k, kid: "bench", alg: "RS256", use: "sig" }] }));`
	out, err := exec.Command("node", "-e", keygen).Output()
	if err != nil {
		return nil, fmt.Errorf("making the authorization server's key: %v", err)
	}
	if err := os.WriteFile(keys, out, 0o600); err != nil {
		return nil, err
	}
	port := freePort()
	as, err := start(e.dir, "authserver", false, "node", filepath.Join(tsclientDir, "authserver.mjs"), port, keys)
	if err != nil {
		return nil, err
	}
	issuer := "http://127.0.0.1:" + port
	if err := waitListening("127.0.0.1:" + port); err != nil {
		as.stop()
		return nil, err
	}
	c, err := e.startOursBehind(name, "lean", "/mcp", fmt.Sprintf(`mcp_auth {
		authorization_server %s
		scopes mcp:tools
	}`, issuer))
	if err != nil {
		as.stop()
		return nil, err
	}
	c.procs = append(c.procs, as)
	u, _ := url.Parse(c.url)
	token, err := clientCredentialsToken(issuer, u.Scheme+"://"+u.Host)
	if err != nil {
		c.stop()
		return nil, err
	}
	c.authorization = "Bearer " + token
	return c, nil
}

// clientCredentialsToken gets a token for resource from the server.
func clientCredentialsToken(issuer, resource string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {"mcp:tools"}}
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("mcp-client", "mcp-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token: %s %s", resp.Status, body)
	}
	return tok.AccessToken, nil
}
