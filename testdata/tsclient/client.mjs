// Connects the official TypeScript SDK's SSE client to the URL given as the
// first argument, runs initialize, tools/list and tools/call echo with the
// text given as the second, and prints one JSON line with what came back.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";

const [url, text] = process.argv.slice(2);
const client = new Client({ name: "ts-e2e", version: "1.0.0" });
try {
  await client.connect(new SSEClientTransport(new URL(url)));
  const { tools } = await client.listTools();
  const result = await client.callTool({ name: "echo", arguments: { text } });
  console.log(JSON.stringify({
    server: client.getServerVersion()?.name,
    tools: tools.map((t) => t.name).sort(),
    text: result.content[0].text,
  }));
  await client.close();
} catch (err) {
  console.error(`ts client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
