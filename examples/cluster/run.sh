#!/usr/bin/env bash
# The cluster example on one machine: Redis, two mcp_sse instances and a
# balancer in front of them. Clients connect to http://localhost:8080/sse.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)

if ! command -v redis-server >/dev/null; then
	echo "redis-server not found: apt-get install redis-server (Debian/Ubuntu)" >&2
	exit 1
fi
bin=$(mktemp -d)
go -C "$root" build -o "$bin/caddy" ./cmd/caddy

# The instances' shared secret (the base64 of 32 random bytes): a new one
# each run, unless one is given.
MCP_CLUSTER_KEY=${MCP_CLUSTER_KEY:-$(head -c 32 /dev/urandom | base64)}
export MCP_CLUSTER_KEY

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait
	rm -rf "$bin"
}
trap cleanup EXIT INT TERM

# noeviction: Redis must refuse writes when full, never drop a session's keys.
redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly yes --dir "$bin" \
	--maxmemory-policy noeviction >"$bin/redis.log" 2>&1 &
pids+=($!)
# The instances read it from their environment ({env.REDIS_URL}).
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
INSTANCE=a PORT=8081 ADMIN=2021 "$bin/caddy" run --config instance.Caddyfile >"$bin/a.log" 2>&1 &
pids+=($!)
INSTANCE=b PORT=8082 ADMIN=2022 "$bin/caddy" run --config instance.Caddyfile >"$bin/b.log" 2>&1 &
pids+=($!)
"$bin/caddy" run --config balancer.Caddyfile >"$bin/balancer.log" 2>&1 &
pids+=($!)

echo "cluster up: clients connect to http://localhost:8080/sse"
echo "sessions of the cluster: curl localhost:2021/mcp_sse/sessions (or :2022)"
echo "logs in $bin; Ctrl-C stops it all"
wait -n "${pids[@]}"
echo "a process of the example exited; stopping the rest" >&2
