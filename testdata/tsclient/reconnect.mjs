// The TypeScript SDK's SSE client, driven line by line by reconnect_test.go
// while a relay the test controls cuts its stream. Arguments: the SSE URL
// and, optionally, an Authorization header value (sent, as requestInit
// headers, with the GET and every POST). It connects (initialize), lists
// tools and prints READY; then it runs the commands it reads on stdin:
//
//   reconnected  wait for an endpoint event no RECONNECTED has reported
//                yet (the SDK reconnects by itself after `retry`, maybe
//                before the command comes), print RECONNECTED
//   list         tools/list, print LISTED
//   call <text>  tools/call echo, print SENT once its POST was accepted,
//                then CALLED with the answer
//   quit         close and exit
//
// Every line it prints is a tag and one JSON object; every wait has a
// deadline, and any failure exits non-zero with the reason on stderr.
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";

const [url, authorization] = process.argv.slice(2);
const say = (tag, value) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`);
const within = (ms, what, promise) => {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};

const commands = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const opts = authorization ? { requestInit: { headers: { Authorization: authorization } } } : undefined;
const transport = new SSEClientTransport(new URL(url), opts);
// SENT tells the test that a call's POST was accepted (the SDK throws on
// any other status); the answer may come on the stream before it.
const send = transport.send.bind(transport);
transport.send = async (message, options) => {
  await send(message, options);
  if (message.method === "tools/call") say("SENT", { text: message.params.arguments.text });
};
const client = new Client({ name: "ts-reconnect", version: "1.0.0" });
client.onerror = (err) => process.stderr.write(`client error (the SDK goes on): ${err?.message ?? err}\n`);

try {
  await client.connect(transport);
  // The SDK's EventSource reconnects by itself; each stream it opens
  // starts with an endpoint event, after the transport's own listener has
  // taken the endpoint.
  let endpoints = 0;
  let reported = 0;
  let waiting = null;
  transport._eventSource.addEventListener("endpoint", () => {
    endpoints++;
    waiting?.();
  });
  const tools = (await within(10000, "tools/list", client.listTools())).tools.length;
  say("READY", { endpoint: transport._endpoint.href, tools });
  for (;;) {
    const { value, done } = await within(60000, "a command on stdin", commands.next());
    if (done) throw new Error("stdin closed before quit");
    const [cmd, ...rest] = value.trim().split(" ");
    if (cmd === "reconnected") {
      await within(15000, "the reconnected stream's endpoint", new Promise((resolve) => {
        waiting = () => endpoints > reported && resolve();
        waiting();
      }));
      reported = endpoints;
      say("RECONNECTED", { endpoint: transport._endpoint.href, reconnects: endpoints });
    } else if (cmd === "list") {
      const { tools } = await within(15000, "tools/list", client.listTools());
      say("LISTED", { tools: tools.map((t) => t.name).sort() });
    } else if (cmd === "call") {
      const text = rest.join(" ");
      const result = await within(20000, `tools/call echo ${text}`,
        client.callTool({ name: "echo", arguments: { text } }));
      say("CALLED", { text: result.content[0].text, endpoint: transport._endpoint.href, reconnects: endpoints });
    } else if (cmd === "quit") {
      break;
    } else {
      throw new Error(`unknown command ${value}`);
    }
  }
  await client.close();
  process.exit(0);
} catch (err) {
  console.error(`ts client failed: ${err?.stack ?? err}`);
  process.exit(1);
}
