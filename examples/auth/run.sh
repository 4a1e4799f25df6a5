#!/usr/bin/env bash
# mcp_auth against a real authorization server: panva's oidc-provider (the
# one the tests run, testdata/tsclient/authserver.mjs) on 127.0.0.1:9400,
# with a signing key made here, and Caddy with examples/auth/Caddyfile on
# :8080. Then, from another shell:
#
#   node testdata/tsclient/auth_client.mjs http://localhost:8080/sse sse http://127.0.0.1:9400 hello
#
# (the TypeScript SDK: 401, discovery, a client_credentials token for the
# resource, then tools/call echo), or as an interactive client that signs
# in as alice (authorization code with PKCE; it holds the session until
# its stdin ends):
#
#   node testdata/tsclient/auth_code_client.mjs http://localhost:8080/sse sse http://127.0.0.1:9400 alice hello </dev/null
#
# or by hand with curl (see README).
set -euo pipefail
cd "$(dirname "$0")/../.."
npm ci --prefix testdata/tsclient --no-audit --no-fund --loglevel=error
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
node -e '
const { generateKeyPairSync, randomUUID } = require("node:crypto");
const k = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
console.log(JSON.stringify({ keys: [{ ...k, kid: randomUUID(), alg: "RS256", use: "sig" }] }));
' >"$dir/keys.json"
node testdata/tsclient/authserver.mjs 9400 "$dir/keys.json" &
go run ./cmd/caddy run --config examples/auth/Caddyfile
