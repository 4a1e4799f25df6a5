// A real OAuth 2.1 / OpenID authorization server for the mcp_auth tests:
// panva's oidc-provider (OpenID certified), configured as a production one
// for MCP would be: resource indicators (RFC 8707) with JWT access tokens
// (RFC 9068) whose audience is the resource the client named, the
// client_credentials grant, the authorization-code grant with PKCE for a
// public client that a person logs in through, token introspection
// (RFC 7662), and keys it signs with that the test can rotate.
//
// oidc-provider 9 prints "Unsupported runtime. Use Node.js v22.x LTS" under
// node 20, the node of this project's machines; everything the tests use
// works there (they pass on 20.20).
//
// Usage: node authserver.mjs <port> <keys.json>
//   keys.json is a JWKS of private keys; the first RS256 key signs.
// It prints "READY <issuer>" once it listens on 127.0.0.1:<port>.
//
// Clients (client_secret_basic):
//   mcp-client / mcp-secret        JWT access tokens
//   opaque-client / opaque-secret  opaque access tokens (introspection only)
//   resource-server / rs-secret    what mcp_auth introspects with
//   mcp-web (no secret)            public, as a desktop app or an IDE
//                                  is: authorization code + PKCE S256,
//                                  and refresh tokens; redirect_uri
//                                  http://127.0.0.1:1/callback (nothing
//                                  listens there: the client reads the
//                                  code from the redirect's Location)
//
// The login and consent are oidc-provider's development interactions
// (/interaction/<uid>): a form taking any login name (the token's sub)
// and password, then a consent form whose confirmation grants what was
// asked, the resource's scopes for the resource indicator included.
//
// Beside the provider, for the test only (127.0.0.1):
//   POST /control/keys   body: a JWKS of private keys to sign with from now on
//   GET  /control/stats  how often the keys, discovery and introspection were asked for
import http from "node:http";
import fs from "node:fs";
import Provider from "oidc-provider";

const [port, keysFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const WEB_REDIRECT = "http://127.0.0.1:1/callback";
const stats = { jwks: 0, discovery: 0, introspection: 0, token: 0 };

function configuration(keys) {
  return {
    clients: [
      {
        client_id: "mcp-client",
        client_secret: "mcp-secret",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: "mcp:tools mcp:admin",
      },
      {
        client_id: "opaque-client",
        client_secret: "opaque-secret",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: "mcp:tools mcp:admin",
      },
      {
        client_id: "mcp-web",
        application_type: "native",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        redirect_uris: [WEB_REDIRECT],
        scope: "mcp:tools",
      },
      {
        client_id: "resource-server",
        client_secret: "rs-secret",
        grant_types: [],
        redirect_uris: [],
        response_types: [],
      },
    ],
    scopes: ["openid", "mcp:tools", "mcp:admin"],
    jwks: { keys },
    // A client allowed the refresh_token grant gets a refresh token with
    // its code, offline_access or not (MCP clients do not ask for it).
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      resourceIndicators: {
        enabled: true,
        // A token is always for a resource the client named.
        defaultResource: async () => undefined,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator, client) => ({
          scope: "mcp:tools mcp:admin",
          audience: resourceIndicator,
          accessTokenTTL: 300,
          accessTokenFormat: client.clientId === "opaque-client" ? "opaque" : "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
  };
}

function provider(keys) {
  const p = new Provider(issuer, configuration(keys));
  p.on("server_error", (ctx, err) => console.error("server_error", err));
  return p.callback();
}

let current = provider(JSON.parse(fs.readFileSync(keysFile, "utf8")).keys);

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (path === "/control/keys" && req.method === "POST") {
    try {
      current = provider(JSON.parse(await readBody(req)).keys);
      res.writeHead(204).end();
    } catch (err) {
      res.writeHead(400).end(String(err));
    }
    return;
  }
  if (path === "/control/stats") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(stats));
    return;
  }
  if (path === "/jwks") stats.jwks++;
  if (path.startsWith("/.well-known/")) stats.discovery++;
  if (path === "/token/introspection") stats.introspection++;
  if (path === "/token") stats.token++;
  current(req, res);
});
server.listen(Number(port), "127.0.0.1", () => console.log(`READY ${issuer}`));
// Exit at once: a graceful close would wait for the clients' idle
// keep-alive connections.
process.on("SIGTERM", () => process.exit(0));
