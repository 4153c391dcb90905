#!/usr/bin/env bash
# jobs.sh - trivial jobs completed per second on a 3-node cluster against
# raw posix_spawn of /bin/true in the same run, with and without a backlog
# of jobs no node can run.
#
#   bench/jobs.sh BIN [ROUNDS=3] [DIR=/tmp/ingot-jobs-PID]
#   env: JOBS (2000), SLOTS (per node, 2), BACKLOGS ("0 100000"),
#        INFLIGHT (submits in flight, 64)
#
# For each round and each backlog size in BACKLOGS: a fresh 3-node cluster
# (dev mode, shipped defaults, SLOTS slots per node; ports 23471-23473 API
# / 23481-23483 raft, data under DIR) and one `jobs_bench` run against it
# (its --pids are the three ingotd processes): the backlog submits, the
# spawn anchor, JOBS trivial jobs to completion, the anchor again.  Prints
# every run's result line and, per backlog, the medians of rate, ratio to
# the anchor and CPU per job.  Loopback only; every process is stopped on
# exit by pid.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
bin="$(cd "$1" && pwd)"; rounds="${2:-3}"; dir="${3:-/tmp/ingot-jobs-$$}"
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

run_one() { # backlog
  local backlog="$1" d="$dir/run" node_pids=""
  rm -rf "$d"
  for i in 1 2 3; do
    mkdir -p "$d/node$i"
    {
      echo "id: $i"
      echo "raft_address: 127.0.0.1:2348$i"
      echo "api_address: 127.0.0.1:2347$i"
      echo "slots: $slots"
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
    --backlog "$backlog" --pids "$node_pids" | tee -a "$dir/results"
  stop_all
}

echo "== jobs.sh $bin: $rounds rounds, $jobs jobs, $slots slots x 3 nodes, backlogs: $backlogs; load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$dir/results"
for r in $(seq "$rounds"); do
  for b in $backlogs; do
    echo "-- round $r backlog $b (load $(cut -d' ' -f1 /proc/loadavg))"
    run_one "$b"
  done
done
echo "== medians (load $(cut -d' ' -f1-3 /proc/loadavg))"
med() { # backlog key
  grep " backlog=$1 " "$dir/results" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "nan" }'
}
for b in $backlogs; do
  echo "backlog $b: $(grep -c " backlog=$b " "$dir/results") runs, rate $(med "$b" ingot_rate) jobs/s," \
    "anchor $(med "$b" anchor_rate) spawns/s, ratio $(med "$b" ratio)," \
    "cpu $(med "$b" ingot_cpu_ms_per_job) ms/job (anchor $(med "$b" anchor_cpu_ms_per_spawn) ms/spawn)"
done
