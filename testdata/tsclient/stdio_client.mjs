// Drives mcp_stdio with the official TypeScript SDK: connects to the URL
// given first with the transport given second ("sse" or "streamable"),
// runs initialize, tools/list, tools/call echo with the text given third,
// a call with progress and a sampling round trip, and prints one JSON line
// with what came back.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { progressOnTheWire } from "./progress.mjs";

const [url, kind, text] = process.argv.slice(2);
const client = new Client({ name: "ts-e2e", version: "1.0.0" }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
  model: "ts-model",
  role: "assistant",
  content: { type: "text", text: "ts answer to " + req.params.messages[0].content.text },
}));
const onWire = progressOnTheWire();
try {
  const transport = kind === "sse"
    ? new SSEClientTransport(new URL(url))
    : new StreamableHTTPClientTransport(new URL(url));
  onWire.watch(transport);
  await client.connect(transport);
  const { tools } = await client.listTools();
  const echo = await client.callTool({ name: "echo", arguments: { text } });
  const progress = [];
  const slow = await client.callTool(
    { name: "slow", arguments: { steps: 3, delay_ms: 20 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  );
  const sample = await client.callTool({ name: "sample", arguments: { prompt: "q" } });
  console.log(JSON.stringify({
    server: client.getServerVersion()?.name,
    tools: tools.map((t) => t.name).sort(),
    text: echo.content[0].text,
    slow: slow.content[0].text,
    progress,
    wire: onWire.beforeResult(),
    sample: sample.content[0].text,
  }));
  if (kind !== "sse") await transport.terminateSession();
  await client.close();
} catch (err) {
  console.error(`ts client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
