// The TypeScript SDK's SSE client, driven by clustertest while the Caddy
// holding its stream is killed. Arguments: the SSE URL (the balancer's)
// and, optionally, an Authorization header value (sent, as requestInit
// headers, with the GET and every POST). It connects (initialize), lists
// tools and prints READY; from then on it prints, as they happen:
//
//   ENDPOINT {endpoint, count}   every endpoint event after the first (the
//                                SDK's EventSource reconnects by itself
//                                after `retry`; each stream it opens
//                                starts with one)
//   PROGRESS {progress}          each progress notification of a slow call
//   SENT {tool}                  a call's POST was accepted (the SDK
//                                throws on any other status)
//   SLOW {text, endpoint}        the slow call's answer
//   CALLED {text, endpoint}      an echo call's answer
//   ERROR {message}              an error the SDK reported and went on
//                                from (the stream's cut, an answer to no
//                                request it has in flight: a duplicate)
//
// and runs the commands it reads on stdin:
//
//   slow <steps> <delay_ms>  start tools/call slow (not waiting for it)
//   call <text>              tools/call echo
//   quit                     close and exit
//
// Every line it prints is a tag and one JSON object; every call has a
// deadline, and any failure exits non-zero with the reason on stderr.
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";

const [url, authorization] = process.argv.slice(2);
const say = (tag, value) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`);
const fail = (err) => {
  console.error(`ts client failed: ${err?.stack ?? err}`);
  process.exit(1);
};
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
const send = transport.send.bind(transport);
transport.send = async (message, options) => {
  await send(message, options);
  if (message.method === "tools/call") say("SENT", { tool: message.params.name });
};
const client = new Client({ name: "ts-cluster-reconnect", version: "1.0.0" });
client.onerror = (err) => say("ERROR", { message: `${err?.message ?? err}` });

try {
  await within(15000, "connect", client.connect(transport));
  let endpoints = 0;
  transport._eventSource.addEventListener("endpoint", () => {
    endpoints++;
    say("ENDPOINT", { endpoint: transport._endpoint.href, count: endpoints });
  });
  transport._eventSource.addEventListener("error", (ev) => {
    process.stderr.write(`eventsource error: ${ev?.message ?? ""} code ${ev?.code ?? ""} readyState ${transport._eventSource.readyState}\n`);
  });
  const tools = (await within(15000, "tools/list", client.listTools())).tools.length;
  say("READY", { endpoint: transport._endpoint.href, tools });
  for (;;) {
    const { value, done } = await within(90000, "a command on stdin", commands.next());
    if (done) throw new Error("stdin closed before quit");
    const [cmd, ...rest] = value.trim().split(" ");
    if (cmd === "slow") {
      const [steps, delay] = rest.map(Number);
      // Not awaited: the test kills Caddys while it runs. The SDK's own
      // timeout is the deadline, reset by each progress notification.
      client.callTool(
        { name: "slow", arguments: { steps, delay_ms: delay } },
        undefined,
        {
          timeout: 45000,
          resetTimeoutOnProgress: false,
          onprogress: (p) => say("PROGRESS", { progress: p.progress }),
        },
      ).then(
        (result) => say("SLOW", { text: result.content[0].text, endpoint: transport._endpoint.href }),
        fail,
      );
    } else if (cmd === "call") {
      const text = rest.join(" ");
      const result = await within(20000, `tools/call echo ${text}`,
        client.callTool({ name: "echo", arguments: { text } }));
      say("CALLED", { text: result.content[0].text, endpoint: transport._endpoint.href });
    } else if (cmd === "quit") {
      break;
    } else {
      throw new Error(`unknown command ${value}`);
    }
  }
  await client.close();
  process.exit(0);
} catch (err) {
  fail(err);
}
