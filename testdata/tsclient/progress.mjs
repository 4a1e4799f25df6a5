// The progress notifications of the "slow" tool as they came on the wire,
// before the SDK's handlers, and those of them in before the slow call's
// result: the SDK runs a progress handler a microtask late but drops it as
// soon as the result is read, so a progress read in the same chunk as the
// result (a client that was slow to read) never reaches onprogress.
// watch(transport) is called before the client connects: the SDK's Client
// calls a handler set before connect first. beforeResult() is the
// progress values read before the slow call's result (null before it).
export function progressOnTheWire() {
  const wire = [];
  let slowId;
  let beforeResult = null;
  return {
    watch(transport) {
      const send = transport.send.bind(transport);
      transport.send = (message, options) => {
        if (message.method === "tools/call" && message.params?.name === "slow") slowId = message.id;
        return send(message, options);
      };
      transport.onmessage = (message) => {
        if (message.method === "notifications/progress") wire.push(message.params.progress);
        else if (!message.method && slowId !== undefined && message.id === slowId) beforeResult = [...wire];
      };
    },
    beforeResult: () => beforeResult,
  };
}
