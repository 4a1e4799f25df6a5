// The TypeScript SDK's SSE client against a cluster (clustertest): connects
// to the SSE URL given first, runs initialize, tools/list, tools/call echo
// with the text given second, add(2, 40), slow with progress, and a
// sampling round trip, and prints one JSON line with what came back.
// Every call has a deadline; any failure exits non-zero with the reason on
// stderr.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { progressOnTheWire } from "./progress.mjs";

const [url, text] = process.argv.slice(2);
const client = new Client({ name: "ts-cluster", version: "1.0.0" }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
  model: "ts-model",
  role: "assistant",
  content: { type: "text", text: "ts answer to " + req.params.messages[0].content.text },
}));
const opts = { timeout: 20000 };
const onWire = progressOnTheWire();
try {
  const transport = new SSEClientTransport(new URL(url));
  onWire.watch(transport);
  await client.connect(transport, opts);
  const sessionId = new URL(transport._endpoint.href).searchParams.get("session_id");
  const { tools } = await client.listTools(undefined, opts);
  const echo = await client.callTool({ name: "echo", arguments: { text } }, undefined, opts);
  const add = await client.callTool({ name: "add", arguments: { a: 2, b: 40 } }, undefined, opts);
  const progress = [];
  const slow = await client.callTool(
    { name: "slow", arguments: { steps: 3, delay_ms: 20 } },
    undefined,
    { ...opts, onprogress: (p) => progress.push(p.progress) },
  );
  const sample = await client.callTool({ name: "sample", arguments: { prompt: "q" } }, undefined, opts);
  console.log(JSON.stringify({
    session: sessionId,
    server: client.getServerVersion()?.name,
    tools: tools.map((t) => t.name).sort(),
    text: echo.content[0].text,
    add: add.content[0].text,
    slow: slow.content[0].text,
    progress,
    wire: onWire.beforeResult(),
    sample: sample.content[0].text,
  }));
  await client.close();
  process.exit(0);
} catch (err) {
  console.error(`ts client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
