// Package clustertest holds the end-to-end tests of cluster mode: real
// Caddy processes (three mcp_sse instances sharing their sessions through
// a real redis-server, a fourth balancing round-robin in front, a fifth
// serving the demo MCP server behind them) and real clients (the Go SDK,
// mcp-go, the TypeScript SDK under node, and a raw SSE reader).
//
// It has no code of its own beyond its tests; it is a package of its own
// so that its processes and its run time stay apart from the unit tests.
package clustertest
