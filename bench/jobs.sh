#!/usr/bin/env bash
# jobs.sh - trivial jobs completed per second on a 3-node cluster against
# raw posix_spawn of /bin/true in the same run, with and without a backlog
# of jobs no node can run.
#
#   bench/jobs.sh ROUNDS DIR BIN [BIN...]
#   env: JOBS (2000), SLOTS (per node, 2), BACKLOGS ("0 100000"),
#        INFLIGHT (submits in flight, 64), SPAWN_CONCURRENCY (the anchor's;
#        default: the cluster's slots), SANDBOX (on or off; default: the
#        build's default, on since the stage sandbox), SETTLE (seconds
#        jobs_bench may wait after the backlog's submits for the nodes to
#        go quiet, --settle-s; default 0: no wait)
#
# For each round, each build directory BIN (ingotd, ingotctl, jobs_bench;
# the builds take turns) and each backlog size in BACKLOGS: a fresh 3-node
# cluster (dev mode, shipped defaults, SLOTS slots per node; ports
# 23471-23473 API / 23481-23483 raft, data under DIR) and one `jobs_bench`
# run against it (its --pids are the three ingotd processes): the backlog
# submits, the spawn anchor, JOBS trivial jobs to completion, the anchor
# again.  Prints every run's result line and, per build and backlog, the
# medians of rate, ratio to the anchor and CPU per job.  Loopback only;
# every process is stopped on exit by pid.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/token.sh"  # bench_token: the admin token
[ $# -ge 3 ] || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
rounds="$1"; dir="$2"; shift 2
bins=()
for b in "$@"; do bins+=("$(cd "$b" && pwd)"); done
jobs="${JOBS:-2000}"; slots="${SLOTS:-2}"; backlogs="${BACKLOGS:-0 100000}"
inflight="${INFLIGHT:-64}"
mkdir -p "$dir"
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_all; rm -rf "$dir"' EXIT INT TERM
if ss -ltn | grep -qE '127\.0\.0\.1:234[78][1-3] '; then
  echo "jobs: ports 23471-23473/23481-23483 busy" >&2; exit 2
fi

run_one() { # bin backlog
  local bin="$1" backlog="$2" d="$dir/run" node_pids=""
  rm -rf "$d"
  for i in 1 2 3; do
    mkdir -p "$d/node$i"
    {
      echo "id: $i"
      echo "raft_address: 127.0.0.1:2348$i"
      echo "api_address: 127.0.0.1:2347$i"
      echo "slots: $slots"
      [ -z "${SANDBOX:-}" ] || echo "sandbox: $SANDBOX"
      echo "peers:"
      for j in 1 2 3; do
        echo "  - {id: $j, raft_address: 127.0.0.1:2348$j, api_address: 127.0.0.1:2347$j}"
      done
    } >"$d/node$i/config.yaml"
    "$bin/ingotd" --config "$d/node$i/config.yaml" --data-dir "$d/node$i/data" \
      >>"$d/node$i/ingotd.log" 2>&1 &
    pids+=($!)
    node_pids="$node_pids${node_pids:+,}$!"
  done
  bench_token "$d"/node{1,2,3}/data
  local eps="127.0.0.1:23471,127.0.0.1:23472,127.0.0.1:23473" leader=""
  for _ in $(seq 100); do
    leader="$(timeout 3 "$bin/ingotctl" --endpoints "$eps" --timeout 1s -o json status 2>/dev/null |
      sed -n 's/^ *"leader": *\([0-9][0-9]*\),*$/\1/p' | head -1)" || true
    [ -n "$leader" ] && break
    sleep 0.2
  done
  [ -n "$leader" ] || { echo "jobs: no leader" >&2; exit 1; }
  # every node registered its slots
  for _ in $(seq 100); do
    [ "$("$bin/ingotctl" --endpoints "$eps" -o json node list 2>/dev/null | grep -c '"slots"')" = 3 ] && break
    sleep 0.2
  done
  local leps="127.0.0.1:2347$leader"
  for i in 1 2 3; do [ "$i" = "$leader" ] || leps="$leps,127.0.0.1:2347$i"; done
  "$bin/jobs_bench" --endpoints "$leps" --jobs "$jobs" --inflight "$inflight" \
    --backlog "$backlog" --settle-s "${SETTLE:-0}" --pids "$node_pids" ${SPAWN_CONCURRENCY:+--spawn-concurrency "$SPAWN_CONCURRENCY"} |
    sed "s|^|$(basename "$bin") |" | tee -a "$dir/results"
  stop_all
}

echo "== jobs.sh ${bins[*]}: $rounds rounds, $jobs jobs, $slots slots x 3 nodes, backlogs: $backlogs; load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$dir/results"
for r in $(seq "$rounds"); do
  for bin in "${bins[@]}"; do
    for b in $backlogs; do
      echo "-- round $r $(basename "$bin") backlog $b (load $(cut -d' ' -f1 /proc/loadavg))"
      run_one "$bin" "$b"
    done
  done
done
echo "== medians (load $(cut -d' ' -f1-3 /proc/loadavg))"
med() { # build backlog key
  grep "^$1 jobs_bench result .* backlog=$2 " "$dir/results" | tr ' ' '\n' | sed -n "s/^$3=//p" |
    sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "nan" }'
}
for bin in "${bins[@]}"; do
  n="$(basename "$bin")"
  for b in $backlogs; do
    echo "$n backlog $b: $(grep -c "^$n jobs_bench result .* backlog=$b " "$dir/results") runs," \
      "rate $(med "$n" "$b" ingot_rate) jobs/s, anchor $(med "$n" "$b" anchor_rate) spawns/s," \
      "ratio $(med "$n" "$b" ratio), cpu $(med "$n" "$b" ingot_cpu_ms_per_job) ms/job" \
      "(anchor $(med "$n" "$b" anchor_cpu_ms_per_spawn) ms/spawn)"
  done
done
