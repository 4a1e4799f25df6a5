// The TypeScript SDK as an interactive MCP client (a desktop app, an IDE)
// that a person logs in through: the authorization-code grant with PKCE
// and a resource indicator, driven by the SDK's own auth() machinery
// through the transport's authProvider.
//
// Usage: node auth_code_client.mjs <url> <sse|streamable> <issuer> <login> <text>
//
// It connects to <url> with no token. On the 401 the SDK reads
// WWW-Authenticate, fetches the Protected Resource Metadata, discovers
// the authorization server and builds the authorization URL (client
// mcp-web, pre-registered and public; PKCE S256; resource = the PRM's
// resource; a state) and hands it to redirectToAuthorization, which plays
// the person's browser with fetch: it follows the redirects by hand,
// keeps the cookies, signs in as <login> on the server's login form,
// confirms the consent form, and stops at the redirect to the client's
// redirect_uri, whose code (with state and iss checked) it keeps. The
// connect fails with UnauthorizedError, as the SDK does when a browser
// must be involved; then transport.finishAuth(code) makes the SDK trade
// the code and its code_verifier for tokens, and a new transport
// connects with them. Then initialize, tools/list, tools/call echo with
// <text>, and a refresh: auth() again, which uses the refresh token, and
// one more tools/call with the new access token.
//
// It prints one JSON line: the tool text, the access token's claims as
// the client sees them (sub, aud, scope, client_id), what the
// authorization request carried, and whether the refresh worked. Then it
// keeps the session open until its stdin ends (the test looks at the
// server's sessions meanwhile) and closes it. Diagnostics go to stderr.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { auth, UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { randomBytes } from "node:crypto";

const [url, kind, issuer, login, text] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:1/callback"; // authserver.mjs's mcp-web
const CLIENT_ID = "mcp-web";
const STEPS = 20; // at most this many requests in one login
// The SDK's SSE transport answers a 401 by refreshing and retrying, with
// no end when the server keeps refusing the new token; a client that got
// tokens this often is refused for good.
const MAX_TOKENS = 4;

// Browser is the person's user agent: a cookie jar and manual redirects.
class Browser {
  cookies = new Map();

  async request(target, init = {}) {
    const headers = new Headers(init.headers);
    if (this.cookies.size) {
      headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    const res = await fetch(target, { ...init, headers, redirect: "manual", signal: AbortSignal.timeout(10_000) });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || value === "";
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  // login walks from the authorization URL to the redirect to
  // redirectUri, answering the login form as user and confirming the
  // consent form. It returns that redirect's URL.
  async login(authorizationUrl, redirectUri, user) {
    let res = await this.request(authorizationUrl);
    let at = new URL(authorizationUrl);
    const seen = [];
    for (let i = 0; i < STEPS; i++) {
      if (res.status >= 300 && res.status < 400) {
        const next = new URL(res.headers.get("location"), at);
        if (next.href.startsWith(redirectUri)) return { callback: next, seen };
        await res.arrayBuffer();
        at = next;
        res = await this.request(at);
        continue;
      }
      const body = await res.text();
      if (res.status !== 200) throw new Error(`${at.href}: ${res.status}: ${body.slice(0, 2000)}`);
      const form = parseForm(body);
      if (!form) throw new Error(`${at.href}: no form in the page: ${body.slice(0, 2000)}`);
      const fields = new URLSearchParams(form.fields);
      switch (fields.get("prompt")) {
        case "login":
          fields.set("login", user);
          fields.set("password", "any password");
          break;
        case "consent":
          break;
        default:
          throw new Error(`${at.href}: a form for prompt ${fields.get("prompt")}: ${body.slice(0, 2000)}`);
      }
      seen.push(fields.get("prompt"));
      at = new URL(form.action, at);
      res = await this.request(at, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: fields.toString(),
      });
    }
    throw new Error(`no redirect to ${redirectUri} within ${STEPS} requests`);
  }
}

function unescapeHtml(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e) => {
    const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }[e.toLowerCase()];
    if (named) return named;
    return String.fromCodePoint(e[1].toLowerCase() === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

// parseForm reads the page's first POST form: its action and the names
// and values of its inputs.
function parseForm(html) {
  const m = html.match(/<form\b[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
  if (!m) return undefined;
  const fields = [];
  for (const input of m[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = input[0].match(/\bname="([^"]*)"/i);
    const value = input[0].match(/\bvalue="([^"]*)"/i);
    if (name) fields.push([unescapeHtml(name[1]), value ? unescapeHtml(value[1]) : ""]);
  }
  return { action: unescapeHtml(m[1]), fields };
}

// The client's side of OAuth, as the SDK asks an application for it.
class WebClientProvider {
  browser = new Browser();
  authorizations = []; // the authorization URLs the SDK built
  code;
  _tokens;
  _verifier;
  _state;
  _saved = 0;

  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: "ts-auth-code-e2e",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  // Pre-registered, and bound to the authorization server it belongs
  // to: the SDK refuses to use it with one that discovery found elsewhere.
  clientInformation() { return { client_id: CLIENT_ID, issuer }; }
  tokens() { return this._tokens; }
  saveTokens(t) {
    if (++this._saved > MAX_TOKENS) throw new Error(`got tokens ${MAX_TOKENS} times and the server still refuses them`);
    this._tokens = t;
  }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() {
    if (!this._verifier) throw new Error("no code verifier saved");
    return this._verifier;
  }
  state() {
    this._state = randomBytes(16).toString("base64url");
    return this._state;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.authorizations.push(new URL(authorizationUrl));
    if (this.code) throw new Error("sent to log in again after the code was traded: the server refuses the token");
    const { callback, seen } = await this.browser.login(authorizationUrl, REDIRECT, login);
    const p = callback.searchParams;
    if (p.get("error")) throw new Error(`authorization refused: ${p.get("error")}: ${p.get("error_description")}`);
    if (p.get("state") !== this._state) throw new Error(`state ${p.get("state")}, sent ${this._state}`);
    if (p.get("iss") !== issuer) throw new Error(`iss ${p.get("iss")}, want ${issuer}`);
    if (!p.get("code")) throw new Error(`no code in ${callback.href}`);
    this.code = p.get("code");
    this.prompts = seen;
  }
}

function claims(token) {
  const parts = (token ?? "").split(".");
  return parts.length === 3 ? JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) : {};
}

function transportFor(authProvider) {
  return kind === "sse"
    ? new SSEClientTransport(new URL(url), { authProvider })
    : new StreamableHTTPClientTransport(new URL(url), { authProvider });
}

const provider = new WebClientProvider();
try {
  // First attempt: no token; the SDK starts the authorization.
  const first = transportFor(provider);
  try {
    await new Client({ name: "ts-auth-code-e2e", version: "1.0.0" }).connect(first);
    throw new Error("connected without logging in");
  } catch (err) {
    if (!(err instanceof UnauthorizedError) || !provider.code) throw err;
  }
  await first.finishAuth(provider.code);
  const firstToken = provider.tokens()?.access_token;

  const transport = transportFor(provider);
  const client = new Client({ name: "ts-auth-code-e2e", version: "1.0.0" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  const echo = await client.callTool({ name: "echo", arguments: { text } });

  // The refresh an application does when its access token runs out.
  const hadRefresh = Boolean(provider.tokens()?.refresh_token);
  let refreshed = false;
  if (hadRefresh) {
    const before = provider.tokens().access_token;
    const result = await auth(provider, { serverUrl: new URL(url) });
    refreshed = result === "AUTHORIZED" && provider.tokens().access_token !== before && provider.authorizations.length === 1;
  }
  // The POST of this call carries the new token.
  const again = await client.callTool({ name: "echo", arguments: { text: text + " again" } });

  const a = provider.authorizations[0];
  const c = claims(firstToken);
  const r = claims(provider.tokens()?.access_token);
  console.log(JSON.stringify({
    server: client.getServerVersion()?.name,
    tools: tools.map((t) => t.name).sort(),
    text: echo.content[0].text,
    again: again.content[0].text,
    sub: c.sub,
    aud: c.aud,
    scope: c.scope,
    client_id: c.client_id,
    prompts: provider.prompts,
    authorizations: provider.authorizations.length,
    request: {
      client_id: a.searchParams.get("client_id"),
      resource: a.searchParams.get("resource"),
      code_challenge_method: a.searchParams.get("code_challenge_method"),
      has_code_challenge: Boolean(a.searchParams.get("code_challenge")),
      scope: a.searchParams.get("scope"),
    },
    refreshed,
    refreshed_sub: r.sub,
    refreshed_aud: r.aud,
  }));
  // Hold the session until the test has looked at it.
  for await (const _ of process.stdin);
  if (kind !== "sse") await transport.terminateSession().catch(() => {});
  await client.close();
  process.exit(0);
} catch (err) {
  console.error(`ts auth-code client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
