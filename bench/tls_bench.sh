#!/usr/bin/env bash
# tls_bench.sh - what TLS costs through ingot: job.submit throughput and
# 1-in-flight latency on the local 3-node cluster with TLS (cluster-configs/
# local-3 as it is) against the same cluster without its `tls:` key, in
# alternating rounds of one run.
#
#   bench/tls_bench.sh [ROUNDS] [DIR]     (defaults: 3 rounds, DIR /tmp/ingot-tls-bench-$$)
#
# Each round starts a fresh cluster per mode (plain first in odd rounds, TLS
# first in even ones), with scripts/cluster and binaries from $INGOT_BIN (a
# release build, e.g. build/bench), and runs on it, leader's endpoint first:
#   load_bench --connections 16 --inflight 64 --requests $REQUESTS (40000)
#   load_bench --connections 1 --inflight 1 --requests $REQUESTS1 (3000)
# both with --capability no-such-tool (jobs stay queued: the write path
# only).  The leader is the one `ingotctl status` names three times in a
# row; a 16x64 run during which the leader moved is printed but not counted
# (it measured forwarding).  Prints every run's summary line (with the CPU
# time the three nodes and load_bench used per 1000 submits of the 16x64
# run: less noisy than submits/s on a shared machine), then per mode the
# median submits/s and node CPU of the 16x64 runs and the median p50
# latency of the 1x1 runs, TLS's medians relative to plain's, and each
# round's TLS/plain submits/s (the pairs ran back to back).
#
# PORT_OFFSET=N shifts every port of the configs (like the cluster tests'
# INGOT_CLUSTER_PORT_OFFSET) when 7401-7403/7501-7503/7601-7603 are taken.  Bounded:
# every command has a timeout; clusters are stopped by pid file on exit.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/token.sh"  # bench_token: the admin token
root="$(cd "$(dirname "$0")/.." && pwd)"
export INGOT_BIN="${INGOT_BIN:-$root/build/release}"
rounds="${1:-3}"
dir="${2:-/tmp/ingot-tls-bench-$$}"
offset="${PORT_OFFSET:-0}"
requests="${REQUESTS:-40000}"
requests1="${REQUESTS1:-3000}"
cluster="$root/scripts/cluster"
for b in ingotd ingotctl load_bench; do
  [ -x "$INGOT_BIN/$b" ] || { echo "tls_bench: no $b in $INGOT_BIN" >&2; exit 2; }
done

current=""
cleanup() { [ -n "$current" ] && timeout 60 "$cluster" stop "$current" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
mkdir -p "$dir/configs/tls" "$dir/configs/plain"
for cfg in "$root"/cluster-configs/local-3/node*.yaml; do
  name="$(basename "$cfg")"
  python3 -c 'import re, sys; print(re.sub(r"127\.0\.0\.1:(7[456]0\d)", lambda m: "127.0.0.1:%d" % (int(m.group(1)) + int(sys.argv[2])), open(sys.argv[1]).read()), end="")' \
    "$cfg" "$offset" >"$dir/configs/tls/$name"
  # The same without the tls block (the key and its indented lines).
  awk '/^tls:/ {skip = 1; next} skip && /^ / {next} {skip = 0; print}' "$dir/configs/tls/$name" \
    >"$dir/configs/plain/$name"
done

results="$dir/results.txt"
: >"$results"
hz="$(getconf CLK_TCK)"
# CPU ticks (user + system) of the cluster's nodes so far.
node_ticks() {
  local sum=0 p
  for p in $(cat "$1"/node*/pid); do
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$sum"
}
# CPU seconds of this shell's waited-for children, from bash's `times`
# written to $dir/times just before (`times` must run in this shell, not in
# a $(...) subshell).
child_secs_of() {
  awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } print s }' \
    "$dir/times"
}
leader_of() {
  timeout 10 "$INGOT_BIN/ingotctl" -o json status 2>/dev/null |
    sed -n 's/^ *"leader": *\([0-9][0-9]*\),*$/\1/p' | head -1
}
run_mode() {  # mode round
  local mode="$1" k="$2" c="$dir/run-$2-$1"
  current="$c"
  unset INGOT_CACERT INGOT_CERT INGOT_KEY INGOT_TOKEN INGOT_TOKEN_FILE
  timeout 60 "$cluster" start "$dir/configs/$mode" "$c" >/dev/null
  eval "$("$cluster" env "$c")"
  bench_token "$c"/node*/data  # this cluster's own token, once its first leader wrote it
  local lead eps prev="" same=0 tries=0
  # The same leader three times 0.3 s apart: a fresh cluster's first
  # leader sometimes hands over, and a run against a follower measures
  # forwarding instead.
  while [ "$same" -lt 3 ] && [ "$tries" -lt 50 ]; do
    lead="$(leader_of)"
    if [ -n "$lead" ] && [ "$lead" = "$prev" ]; then same=$((same + 1)); else same=1; fi
    prev="$lead"; tries=$((tries + 1)); sleep 0.3
  done
  eps="$(echo "$INGOT_ENDPOINTS" | tr ',' '\n' | awk -v l="$((7400 + offset + lead))" \
    '{ if ($0 ~ ":" l "$") first = $0; else rest = rest "," $0 } END { print first rest }')"
  local out t0 t1 c0 c1
  t0="$(node_ticks "$c")"; times >"$dir/times"; c0="$(child_secs_of)"
  out="$(timeout 600 "$INGOT_BIN/load_bench" --endpoints "$eps" --connections 16 --inflight 64 \
    --requests "$requests" --capability no-such-tool)"
  t1="$(node_ticks "$c")"; times >"$dir/times"; c1="$(child_secs_of)"
  local after moved="" cpu
  after="$(leader_of)"
  [ "$after" = "$lead" ] || moved=" (leader moved from $lead to ${after:-none}: not counted)"
  cpu="$(awk -v n=$((t1 - t0)) -v l="$c0" -v m="$c1" -v r="$requests" -v hz="$hz" \
    'BEGIN { printf "cpu ms per 1000 submits: nodes %.1f load_bench %.1f", n * 1e6 / hz / r, (m - l) * 1e6 / r }')"
  echo "round $k $mode 16x64: ${out%%$'\n'*}; $cpu$moved" | tee -a "$results"
  out="$(timeout 600 "$INGOT_BIN/load_bench" --endpoints "$eps" --connections 1 --inflight 1 \
    --requests "$requests1" --capability no-such-tool)"
  echo "round $k $mode 1x1: ${out%%$'\n'*}" | tee -a "$results"
  timeout 60 "$cluster" stop "$c" >/dev/null
  current=""
  rm -rf "$c"
}

for k in $(seq "$rounds"); do
  if [ $((k % 2)) -eq 1 ]; then order="plain tls"; else order="tls plain"; fi
  for mode in $order; do run_mode "$mode" "$k"; done
done

# load_bench's summary line: "...: <rate> submits/s; latency ms p50 <ms> p90 ...".
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rate() { grep " $1 16x64:" "$results" | grep -v "not counted" | sed -E 's/.* ([0-9.]+) submits\/s.*/\1/' | median; }
p50() { grep " $1 1x1:" "$results" | sed -E 's/.*p50 ([0-9.]+) .*/\1/' | median; }
cpu() { grep " $1 16x64:" "$results" | grep -v "not counted" | sed -E 's/.*submits: nodes ([0-9.]+) .*/\1/' | median; }
rp="$(rate plain)"; rt="$(rate tls)"; lp="$(p50 plain)"; lt="$(p50 tls)"
cp="$(cpu plain)"; ct="$(cpu tls)"
echo "median 16x64 submits/s: plain $rp, tls $rt (tls/plain $(awk -v a="$rt" -v b="$rp" 'BEGIN { printf "%.2f", a / b }'))"
echo "median 16x64 node cpu ms per 1000 submits: plain $cp, tls $ct (tls/plain $(awk -v a="$ct" -v b="$cp" 'BEGIN { printf "%.2f", a / b }'))"
echo "median 1x1 p50 ms: plain $lp, tls $lt (tls/plain $(awk -v a="$lt" -v b="$lp" 'BEGIN { printf "%.2f", a / b }'))"
pairs="$(for k in $(seq "$rounds"); do
  p="$(grep "^round $k plain 16x64:" "$results" | grep -v "not counted" | sed -E 's/.* ([0-9.]+) submits\/s.*/\1/')"
  t="$(grep "^round $k tls 16x64:" "$results" | grep -v "not counted" | sed -E 's/.* ([0-9.]+) submits\/s.*/\1/')"
  [ -n "$p" ] && [ -n "$t" ] && awk -v a="$t" -v b="$p" 'BEGIN { printf "%.2f\n", a / b }'
done)"
echo "16x64 tls/plain per round: $(echo $pairs) (median $(echo "$pairs" | median))"
