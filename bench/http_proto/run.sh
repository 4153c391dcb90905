#!/usr/bin/env bash
# The library choice, measured (docs/performance.md "HTTP library"): builds
# the two throwaway prototypes here (needs libh2o-dev, libmicrohttpd-dev and
# wrk; not part of the build or of scripts/setup) and runs wrk against each
# in turn, ROUNDS times, for 1 and 32 connections, printing requests/s and
# each server's loop pauses.
#   bench/http_proto/run.sh [SECONDS=5] [ROUNDS=2]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-5}"
rounds="${2:-2}"
tmp="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
gcc -O2 -o "$tmp/h2o_proto" "$here/h2o_proto.c" $(pkg-config --cflags --libs libh2o libuv) -lssl -lcrypto
gcc -O2 -o "$tmp/mhd_proto" "$here/mhd_proto.c" $(pkg-config --cflags --libs libmicrohttpd libuv)
port=$((21080 + ${INGOT_CLUSTER_PORT_OFFSET:-0}))
for r in $(seq "$rounds"); do
  for c in 1 32; do
    for lib in h2o mhd; do
      "$tmp/${lib}_proto" "$port" >"$tmp/$lib.out" &
      pid=$!
      pids+=("$pid")
      sleep 0.3
      rps="$(wrk -t1 -c"$c" -d"${seconds}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/{print $2}')"
      kill -TERM "$pid"
      wait "$pid" || true
      echo "round $r  $lib  $c conn  $rps req/s  $(cat "$tmp/$lib.out")"
    done
  done
done
