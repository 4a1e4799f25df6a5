// Connects the TypeScript SDK's SSE client to the URL given as the first
// argument, lists tools, stays idle for the milliseconds given as the
// second, lists tools again on the same session, and prints one JSON line
// with both counts.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";

const [url, idleMs] = process.argv.slice(2);
const client = new Client({ name: "ts-idle", version: "1.0.0" });
try {
  await client.connect(new SSEClientTransport(new URL(url)));
  const before = (await client.listTools()).tools.length;
  await new Promise((resolve) => setTimeout(resolve, Number(idleMs)));
  const after = (await client.listTools()).tools.length;
  console.log(JSON.stringify({ before, after }));
  await client.close();
} catch (err) {
  console.error(`ts client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
