#!/usr/bin/env bash
# size.sh - how ingot behaves as its state grows: write rate while filling,
# disk and memory after, follower restart to ready.
#
#   bench/size.sh JOBS DIR BIN [BIN...]
#   env: INFLIGHT (total, default 64), CHUNKS (default 5), SOURCE_BYTES (256)
#
# For each release build directory BIN (ingotd, ingotctl, load_bench), in
# the order given, on a fresh 3-node cluster (dev mode, shipped defaults,
# ports 23451-23453 API / 23461-23463 raft, data under DIR/<n>):
#  - fills it with JOBS job.submit (jobs kept queued: a capability no node
#    has), to the leader, in CHUNKS equal chunks, printing each chunk's rate;
#    "flat" is the last chunk's rate over the first's;
#  - prints the disk used by each node's data directory and the bytes the
#    disk holding DIR wrote per submit (whole device: an upper bound);
#  - prints each node's largest VmRSS and RssAnon (heap) sampled every
#    second during each chunk (under load), its RSS (VmRSS) and peak
#    (VmHWM) right after the fill and after 10 s idle, and its CPU time
#    and minor page faults over the fill;
#  - stops one follower (SIGTERM), starts it again and prints the time from
#    its start to its first answered read (`job list --limit 1 --stale` to
#    that node alone) and the restarted process's peak RSS.
# Every process is tracked by pid and stopped on exit; loopback only.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/token.sh"  # bench_token: the admin token
[ $# -ge 3 ] || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
jobs="$1"; dir="$2"; shift 2
inflight="${INFLIGHT:-64}"
chunks="${CHUNKS:-5}"
src_bytes="${SOURCE_BYTES:-256}"
mkdir -p "$dir"
dev="$(basename "$(df --output=source "$dir" | tail -1)")"
pids=()
sampler=""
stop_all() {
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
trap stop_all EXIT INT TERM
if ss -ltn | grep -qE '127\.0\.0\.1:234[56][1-3] '; then
  echo "size: ports 23451-23453/23461-23463 busy" >&2; exit 2
fi

now_ms() { date +%s%3N; }
disk_written() { awk '{ printf "%.0f\n", $7 * 512 }' "/sys/class/block/$dev/stat"; }
mem() { awk '/^VmRSS|^VmHWM|^RssAnon|^RssFile/ { printf "%s %d MB ", $1, $2 / 1024 }' "/proc/$1/status"; }
# CPU seconds (user + system) and minor page faults of a process so far
cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{ printf "cpu %.1f s, minflt %d", ($12 + $13) / hz, $8 }'; }

sample_mem() { # file: appends "node VmRSS_kB RssAnon_kB" for each node every second
  : >"$1"
  while :; do
    for i in 1 2 3; do
      awk -v n="$i" '/^VmRSS/ { r = $2 } /^RssAnon/ { a = $2 } END { print n, r, a }' \
        "/proc/${node_pid[$i]}/status" >>"$1" 2>/dev/null || true
    done
    sleep 1
  done
}

start_node() { # bin d i
  local bin="$1" d="$2" i="$3"
  "$bin/ingotd" --config "$d/node$i/config.yaml" --data-dir "$d/node$i/data" \
    >>"$d/node$i/ingotd.log" 2>&1 &
  node_pid[$i]=$!
  pids+=($!)
}

declare -a node_pid
for bin in "$@"; do
  d="$dir/$(basename "$bin")-$$"
  rm -rf "$d"
  for i in 1 2 3; do
    mkdir -p "$d/node$i"
    {
      echo "id: $i"
      echo "raft_address: 127.0.0.1:2346$i"
      echo "api_address: 127.0.0.1:2345$i"
      echo "peers:"
      for j in 1 2 3; do
        echo "  - {id: $j, raft_address: 127.0.0.1:2346$j, api_address: 127.0.0.1:2345$j}"
      done
    } >"$d/node$i/config.yaml"
    start_node "$bin" "$d" "$i"
  done
  bench_token "$d"/node{1,2,3}/data
  eps="127.0.0.1:23451,127.0.0.1:23452,127.0.0.1:23453"
  leader=""
  for _ in $(seq 100); do
    leader="$(timeout 3 "$bin/ingotctl" --endpoints "$eps" --timeout 1s -o json status 2>/dev/null |
      sed -n 's/^ *"leader": *\([0-9][0-9]*\),*$/\1/p' | head -1)" || true
    [ -n "$leader" ] && break
    sleep 0.2
  done
  [ -n "$leader" ] || { echo "size: no leader" >&2; exit 1; }
  leps="127.0.0.1:2345$leader"
  for i in 1 2 3; do [ "$i" = "$leader" ] || leps="$leps,127.0.0.1:2345$i"; done
  echo "== $bin: $jobs submits, $inflight in flight, load $(cut -d' ' -f1-3 /proc/loadavg)"
  conns=$((inflight < 16 ? inflight : 16)); per=$((inflight / conns))
  w0="$(disk_written)"; first=""; last=""; total=0
  for c in $(seq "$chunks"); do
    # RSS under load: every node's VmRSS and RssAnon, sampled each second
    sample_mem "$d/mem" &
    sampler=$!
    out="$(timeout 3600 "$bin/load_bench" --endpoints "$leps" --connections "$conns" --inflight "$per" \
      --requests $((jobs / chunks)) --source-bytes "$src_bytes" --warmup $((c == 1 ? 300 : 0)) \
      --capability no-such-tool 2>&1 | awk 'NF == 11 && $1 ~ /^[0-9]+$/')"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    read -r _ _ _ ok errs _ rate p50 _ p99 _ <<<"$out"
    total=$((total + ok))
    echo "chunk $c: $ok ok, $errs errors, $rate submits/s, p50 $p50 ms, p99 $p99 ms (state ~$total jobs)"
    echo "chunk $c under load, max per node: $(awk '{ if ($2 > r[$1]) r[$1] = $2; if ($3 > a[$1]) a[$1] = $3 }
      END { for (n = 1; n <= 3; n++) printf "node%d VmRSS %d MB RssAnon %d MB  ", n, r[n] / 1024, a[n] / 1024 }' "$d/mem")"
    [ -n "$first" ] || first="$rate"
    last="$rate"
  done
  w1="$(disk_written)"
  awk -v a="$first" -v b="$last" 'BEGIN { printf "flat: last chunk / first chunk = %.2f\n", b / a }'
  echo "disk written per submit (whole device): $(((w1 - w0) / (total + 300))) bytes"
  for i in 1 2 3; do
    echo "node$i: data $(du -sm "$d/node$i/data" | cut -f1) MB (state.mdb $(($(stat -c %s "$d/node$i/data/state.mdb") / 1048576)) MB, raft/ $(du -sm "$d/node$i/data/raft" | cut -f1) MB); $(mem "${node_pid[$i]}"); $(cpu "${node_pid[$i]}")"
  done
  sleep 10
  for i in 1 2 3; do echo "node$i after 10 s idle: $(mem "${node_pid[$i]}")"; done
  f=$((leader % 3 + 1))
  kill -TERM "${node_pid[$f]}"
  for _ in $(seq 300); do kill -0 "${node_pid[$f]}" 2>/dev/null || break; sleep 0.05; done
  t0="$(now_ms)"
  start_node "$bin" "$d" "$f"
  ready=""
  for _ in $(seq 2000); do
    if "$bin/ingotctl" --endpoints "127.0.0.1:2345$f" --timeout 1s --stale job list --limit 1 \
      >/dev/null 2>&1; then
      ready="$(now_ms)"; break
    fi
    sleep 0.01
  done
  hwm="$(mem "${node_pid[$f]}")"
  echo "follower node$f restart to first read: $((${ready:-0} - t0)) ms (polled every 10 ms + ingotctl start); restarted process: $hwm"
  stop_all
  rm -rf "$d"
done
