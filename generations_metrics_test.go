package mcpsse_test

// The sessionless path's metrics count what happened: one input round per
// round the bridge relayed, one listen stream per initialized session.

import (
	"testing"
	"time"
)

func TestGenerationsRoundAndListenMetrics(t *testing.T) {
	const rounds = "caddy_mcp_sse_input_rounds_total"
	const streams = "caddy_mcp_sse_listen_streams"
	tc := sessionlessCaddy(t, "")
	// Counters live for the process: the test measures a delta. Tests of
	// this package run one at a time, so no other round counts meanwhile.
	roundsBefore := metricValue(t, tc, rounds)
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	// Another test's stream may still be winding down, so the gauge is
	// only known to count this session's stream, not to be exactly one up.
	eventually(t, 10*time.Second, "the session's listen stream is counted", func() bool {
		return metricValue(t, tc, streams) >= 1
	})
	c.send(callTool(1, "test_input_required_result_elicitation"))
	req := c.nextRequest(10 * time.Second)
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
	if m := c.response(10 * time.Second); string(m.ID) != "1" || toolText(t, m) != "Hello, Ada!" {
		t.Fatalf("answer %+v", m)
	}
	// The round is counted before the retry goes out, so before the answer.
	if got := metricValue(t, tc, rounds); got != roundsBefore+1 {
		t.Errorf("%s went from %v to %v after one round, want +1", rounds, roundsBefore, got)
	}
}
