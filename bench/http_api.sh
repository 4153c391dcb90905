#!/usr/bin/env bash
# The HTTP API of a real node (docs/performance.md "HTTP API"):
#  1. submits/s through HTTP/JSON (wrk + bench/http_submit.lua, POST /v1/jobs)
#     against through msgpack (load_bench), same node, same run, alternated;
#  2. the cost of a /metrics scrape with JOBS jobs in the store, against
#     /healthz in the same run: both are served on the node's loop, one
#     request at a time on one kept-alive connection of an idle node, so a
#     scrape's latency bounds the loop pause it causes (the scrape's work
#     does not grow with the jobs: they are counted at apply, not scraped);
#  3. the restart of that node to ready, which counts the jobs once.
# One node (cluster-configs/dev shape, slots 0 so jobs stay queued, on ports
# 17401/17501/17601 + INGOT_CLUSTER_PORT_OFFSET), a data directory on the
# project's disk under DIR.
#   INGOT_BIN=build/bench [ROUNDS=2] bench/http_api.sh [JOBS=100000] [SECONDS=10] [DIR]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/token.sh"  # bench_token: the admin token
bin="${INGOT_BIN:-build/bench}"
jobs="${1:-100000}"
secs="${2:-10}"
dir="${3:-$PWD/bench-http-api.$$}"
off="${INGOT_CLUSTER_PORT_OFFSET:-0}"
api="127.0.0.1:$((17401 + off))"
raft="127.0.0.1:$((17501 + off))"
http="127.0.0.1:$((17601 + off))"
command -v wrk >/dev/null || { echo "http_api.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "http_api.sh: curl is not installed" >&2; exit 1; }
mkdir -p "$dir"
cat >"$dir/node.yaml" <<YAML
id: 1
data_dir: $dir/data
raft_address: $raft
api_address: $api
http_address: $http
peers:
  - {id: 1, raft_address: $raft, api_address: $api}
slots: 0
probe: false
YAML
"$bin/ingotd" --config "$dir/node.yaml" >"$dir/ingotd.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$http/readyz" >/dev/null && break; sleep 0.1; done
bench_token "$dir/data"

# latency of GET PATH, one connection kept alive, for 5 s (wrk): p50 p99 max
lat() {
  wrk -t1 -c1 -d5s --latency "http://$http$1" |
    awk '/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Latency/ && !l {max=$4; l=1} /requests in/ {n=$1}
         END {printf "p50 %s, p99 %s, max %s (%s requests)", p50, p99, max, n}'
}

rounds="${ROUNDS:-2}"
echo "== submits/s, HTTP/JSON vs msgpack (16 in flight, ${secs}s each, alternated $rounds times)"
"$bin/load_bench" --endpoints "$api" --requests 300 --warmup 10 >/dev/null
for round in $(seq "$rounds"); do
  m=$("$bin/load_bench" --endpoints "$api" --connections 1 --inflight 16 --duration "$secs" --warmup 100 |
      sed -n '1s/.*: \([0-9]*\) submits\/s.*/\1/p')
  h=$(wrk -t1 -c16 -d"${secs}s" -s "$(dirname "$0")/http_submit.lua" "http://$http" |
      awk '/Requests\/sec/ {printf "%d", $2} /Non-2xx/ {printf " (%s non-2xx)", $5}')
  echo "round $round  msgpack (load_bench): $m submits/s   HTTP/JSON (wrk): $h submits/s"
done

have=$(curl -s "http://$http/metrics" | awk '/^ingot_jobs\{/ {s+=$2} END {print s+0}')
if [ "$have" -lt "$jobs" ]; then
  echo "== filling the store to $jobs jobs (msgpack, 64 in flight)"
  "$bin/load_bench" --endpoints "$api" --connections 4 --inflight 16 --requests $((jobs - have)) \
      --warmup 0 --timeout-ms 60000 | sed -n 1p
fi
echo "== jobs in the store: $(curl -s "http://$http/metrics" | awk '/^ingot_jobs\{/ {s+=$2} END {print s+0}')"
for round in 1 2; do
  echo "== round $round  GET /healthz: $(lat /healthz)"
  echo "== round $round  GET /metrics: $(lat /metrics)"
done
echo "== /metrics size: $(curl -s "http://$http/metrics" | wc -c) bytes"
kill -TERM "$pid"
wait "$pid" || true
trap - EXIT
start=$(date +%s.%N)
"$bin/ingotd" --config "$dir/node.yaml" >>"$dir/ingotd.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf "http://$http/readyz" >/dev/null && break; sleep 0.05; done
echo "== restart to ready with $jobs jobs (includes counting them for ingot_jobs): $(echo "$(date +%s.%N) - $start" | bc) s"
