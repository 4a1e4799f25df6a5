// A real OAuth 2.1 / OpenID authorization server for the mcp_auth tests:
// panva's oidc-provider (OpenID certified), configured as a production one
// for MCP would be: resource indicators (RFC 8707) with JWT access tokens
// (RFC 9068) whose audience is the resource the client named, the
// client_credentials grant, the authorization-code grant with PKCE for a
// public client that a person logs in through, token introspection
// (RFC 7662), token exchange (RFC 8693) for a resource server that calls
// another one on the client's behalf, and keys it signs with that the
// test can rotate.
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
//   exchange-client / exchange-secret
//                                  the only client allowed the token
//                                  exchange grant (what mcp_auth's
//                                  token_exchange authenticates as)
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
// Token exchange (RFC 8693, grant_type
// urn:ietf:params:oauth:grant-type:token-exchange), registered with
// oidc-provider's registerGrantType: the client must be allowed the grant
// (oidc-provider refuses others with invalid_request) and have an
// exchange policy; subject_token must be an access token this server
// issued (a JWT signed with its keys, or an opaque one it holds),
// unexpired, whose aud is a resource the client may act for (the tests'
// MCP resources, http://127.0.0.1:<port>), else invalid_grant; the
// resource (or audience) asked for must be one the client may get tokens
// for (https://downstream.example/...), else invalid_target; scope, if
// given, a subset of the subject token's, else invalid_scope. The answer
// is a JWT access token (RS256, the signing key, typ at+jwt) with the
// subject's sub, aud the resource asked for, the scope, act naming the
// exchanging client, and exp the earlier of the subject's and 5 minutes.
//
// Beside the provider, for the test only (127.0.0.1):
//   POST /control/keys   body: a JWKS of private keys to sign with from now on
//   GET  /control/stats  how often the keys, discovery, introspection and
//                        the token endpoint were asked for; exchange: token
//                        exchange requests handled, exchanged: tokens issued
import http from "node:http";
import fs from "node:fs";
import crypto from "node:crypto";
import Provider, { errors } from "oidc-provider";
import { SignJWT, createLocalJWKSet, importJWK, jwtVerify } from "jose";

const [port, keysFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const WEB_REDIRECT = "http://127.0.0.1:1/callback";
const stats = { jwks: 0, discovery: 0, introspection: 0, token: 0, exchange: 0, exchanged: 0 };

const EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const EXCHANGED_TTL = 300;
// Who may exchange what: the audiences of the subject tokens a client
// may act for, and the resources it may get tokens for.
const exchangePolicy = {
  "exchange-client": {
    actsFor: (aud) => /^http:\/\/127\.0\.0\.1:\d+(\/.*)?$/.test(aud),
    mayGet: (resource) => resource.startsWith("https://downstream.example/"),
  },
};

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
        client_id: "exchange-client",
        client_secret: "exchange-secret",
        grant_types: [EXCHANGE_GRANT],
        redirect_uris: [],
        response_types: [],
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

// publicJWKS is the public half of the keys.
function publicJWKS(keys) {
  return {
    keys: keys.map(({ kty, n, e, crv, x, y, kid, alg, use }) =>
      Object.fromEntries(Object.entries({ kty, n, e, crv, x, y, kid, alg, use }).filter(([, v]) => v !== undefined))),
  };
}

// subjectClaims are the claims of an access token this server issued:
// a JWT signed with its keys, or an opaque token it holds; invalid_grant
// for anything else, or an expired one.
async function subjectClaims(provider, keys, token) {
  if (token.split(".").length === 3) {
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(publicJWKS(keys)), { issuer, typ: "at+jwt" });
      return payload;
    } catch (err) {
      throw new errors.InvalidGrant(`subject_token is not a valid access token of this server (${err.code})`);
    }
  }
  const t = (await provider.ClientCredentials.find(token)) ?? (await provider.AccessToken.find(token));
  if (!t || t.isExpired) {
    throw new errors.InvalidGrant("subject_token is not an active access token of this server");
  }
  return { sub: t.accountId ?? t.clientId, aud: t.aud, scope: t.scope, exp: t.exp, client_id: t.clientId };
}

// tokenExchange is the grant's handler (see the top of the file).
function tokenExchange(provider, keys) {
  return async (ctx) => {
    stats.exchange++;
    const { client, params } = ctx.oidc;
    const policy = exchangePolicy[client.clientId];
    if (!policy) throw new errors.UnauthorizedClient("this client may not exchange tokens");
    if (!params.subject_token) throw new errors.InvalidRequest("missing subject_token");
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest("unsupported subject_token_type");
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest("unsupported requested_token_type");
    }
    const subject = await subjectClaims(provider, keys, params.subject_token);
    if (![].concat(subject.aud ?? []).some(policy.actsFor)) {
      throw new errors.InvalidGrant("subject_token is not for a resource this client may act for");
    }
    const target = params.resource ?? params.audience;
    if (!target || !policy.mayGet(target)) throw new errors.InvalidTarget("this client may not get tokens for the resource asked for");
    const held = (subject.scope ?? "").split(" ").filter(Boolean);
    const scope = params.scope ? params.scope.split(" ").filter(Boolean) : held;
    if (!scope.every((s) => held.includes(s))) throw new errors.InvalidScope("scope exceeds the subject token's", params.scope);
    const now = Math.floor(Date.now() / 1000);
    const exp = Math.min(subject.exp, now + EXCHANGED_TTL);
    const signer = keys.find((k) => k.alg === "RS256") ?? keys[0];
    const accessToken = await new SignJWT({ scope: scope.join(" ") || undefined, client_id: client.clientId, act: { sub: client.clientId } })
      .setProtectedHeader({ alg: "RS256", kid: signer.kid, typ: "at+jwt" })
      .setIssuer(issuer)
      .setSubject(subject.sub)
      .setAudience(target)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .setJti(crypto.randomUUID())
      .sign(await importJWK(signer, "RS256"));
    stats.exchanged++;
    ctx.body = {
      access_token: accessToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: exp - now,
      scope: scope.join(" ") || undefined,
    };
  };
}

function provider(keys) {
  const p = new Provider(issuer, configuration(keys));
  p.registerGrantType(EXCHANGE_GRANT, tokenExchange(p, keys), [
    "subject_token", "subject_token_type", "requested_token_type", "resource", "audience", "scope",
  ]);
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
