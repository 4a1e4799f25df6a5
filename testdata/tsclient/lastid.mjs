// A plain EventSource client (the npm eventsource package, which sends
// Last-Event-ID when it reconnects), driven by reconnect_test.go. It opens
// the SSE URL given as its argument and prints a line per thing that
// happens, a tag and one JSON object:
//
//   GET {lastEventId}       each connection it opens, with the
//                           Last-Event-ID it sends (null: none)
//   ENDPOINT {data, id}     an endpoint event and its id
//   SEQ {seq, id}           a notification carrying params.seq
//   MESSAGE {id, eventId}   any other message
//   ERROR {message}         the stream failed (it reconnects after retry)
//
// It runs until stdin closes, or for 60 seconds at most.
import { EventSource } from "eventsource";

const [url] = process.argv.slice(2);
const say = (tag, value) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`);

const es = new EventSource(url, {
  fetch: (input, init) => {
    say("GET", { lastEventId: init?.headers?.["Last-Event-ID"] ?? null });
    return fetch(input, init);
  },
});
es.addEventListener("endpoint", (ev) => say("ENDPOINT", { data: ev.data, id: ev.lastEventId }));
es.addEventListener("message", (ev) => {
  const m = JSON.parse(ev.data);
  if (m.method === "notifications/message" && typeof m.params?.seq === "number") {
    say("SEQ", { seq: m.params.seq, id: ev.lastEventId });
  } else {
    say("MESSAGE", { id: m.id ?? null, eventId: ev.lastEventId });
  }
});
es.onerror = (ev) => say("ERROR", { message: ev.message ?? "" });

const stop = (code) => {
  es.close();
  process.exit(code);
};
setTimeout(() => {
  console.error("lastid.mjs: still running after 60 s");
  stop(2);
}, 60000).unref();
process.stdin.on("end", () => stop(0));
process.stdin.resume();
