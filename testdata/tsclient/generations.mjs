// Connects the TypeScript SDK's SSE client, with elicitation, sampling and
// roots handlers, to the URL given as the first argument, calls each tool
// named in the following arguments and the input prompt, and prints one
// JSON line: {"server": name, "texts": {tool: text}, "prompt": text}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, ...tools] = process.argv.slice(2);
const client = new Client(
  { name: "ts-generations", version: "1.0.0" },
  { capabilities: { elicitation: { form: {} }, sampling: {}, roots: { listChanged: true } } },
);
const answers = { name: "Ada", color: "blue", ok: true, context: "ctx" };
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  const content = {};
  for (const key of Object.keys(req.params.requestedSchema?.properties ?? {})) {
    content[key] = answers[key];
  }
  return { action: "accept", content };
});
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  role: "assistant",
  model: "test",
  content: { type: "text", text: "Paris" },
}));
client.setRequestHandler(ListRootsRequestSchema, async () => ({
  roots: [{ uri: "file:///tmp/root", name: "root" }],
}));
try {
  await client.connect(new SSEClientTransport(new URL(url)));
  const texts = {};
  for (const name of tools) {
    const result = await client.callTool({ name, arguments: {} });
    texts[name] = result.content.map((c) => c.text ?? "").join("");
  }
  const prompt = await client.getPrompt({ name: "test_input_required_result_prompt" });
  console.log(JSON.stringify({
    server: client.getServerVersion()?.name,
    texts,
    prompt: prompt.messages[0]?.content?.text,
  }));
  await client.close();
} catch (err) {
  console.error(`ts client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
