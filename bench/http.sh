#!/usr/bin/env bash
# HTTP server alone (rpc/http.h): requests/s of a trivial handler under wrk
# on loopback, and the loop's pauses, measured by bench/http_bench.c.
#   INGOT_BIN=build/bench bench/http.sh [SECONDS=10] [CONNECTIONS="1 32"]
# One http_bench per connection count; each prints its own loop figures.
set -euo pipefail
bin="${INGOT_BIN:-build/bench}"
seconds="${1:-10}"
conns="${2:-1 32}"
command -v wrk >/dev/null || { echo "http.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
out="$(mktemp)"
trap 'rm -f "$out"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
for c in $conns; do
  "$bin/http_bench" --seconds $((seconds + 2)) >"$out" &
  pid=$!
  for _ in $(seq 50); do grep -q '^port ' "$out" && break; sleep 0.1; done
  port="$(awk '/^port /{print $2}' "$out")"
  echo "== $c connection(s), ${seconds}s"
  wrk -t1 -c"$c" -d"${seconds}s" "http://127.0.0.1:$port/hello" | grep -E 'Requests/sec|Latency'
  wait "$pid"
  pid=""
  grep -v '^port ' "$out"
done
