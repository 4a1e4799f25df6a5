// The TypeScript SDK as an MCP client that logs in by itself: it connects
// to the URL given first with the transport given second ("sse" or
// "streamable") and no token; on the 401 the SDK reads WWW-Authenticate,
// fetches the Protected Resource Metadata it names, discovers the
// authorization server it lists, gets a token for the resource with the
// client_credentials grant (ClientCredentialsProvider, client
// mcp-client), and retries. Then initialize, tools/list and tools/call
// echo with the text given fourth. The third argument is the issuer the
// credentials belong to. Prints one JSON line with what came back and the
// token's audience as the client asked for it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";

const [url, kind, issuer, text, scope = "mcp:tools"] = process.argv.slice(2);
const authProvider = new ClientCredentialsProvider({
  clientId: "mcp-client",
  clientSecret: "mcp-secret",
  scope,
  expectedIssuer: issuer,
});
const client = new Client({ name: "ts-auth-e2e", version: "1.0.0" });
try {
  const transport = kind === "sse"
    ? new SSEClientTransport(new URL(url), { authProvider })
    : new StreamableHTTPClientTransport(new URL(url), { authProvider });
  await client.connect(transport);
  const { tools } = await client.listTools();
  const echo = await client.callTool({ name: "echo", arguments: { text } });
  const token = authProvider.tokens()?.access_token ?? "";
  const payload = token.split(".").length === 3
    ? JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"))
    : {};
  console.log(JSON.stringify({
    server: client.getServerVersion()?.name,
    tools: tools.map((t) => t.name).sort(),
    text: echo.content[0].text,
    aud: payload.aud,
    sub: payload.sub,
  }));
  if (kind !== "sse") await transport.terminateSession().catch(() => {});
  await client.close();
} catch (err) {
  console.error(`ts auth client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
