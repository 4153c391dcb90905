#!/usr/bin/env bash
# check-targets.sh - runs the example jobs through every target in
# cluster-configs/targets/ the way the worker does, without a cluster.
#
#   examples/check-targets.sh [-v] [TARGET...]     (from anywhere; CI-safe)
#
# For each job below it makes an attempt directory holding src/ (the job's
# sources under their submitted paths, as given from the repository root)
# and one output directory per stage, substitutes the argv placeholders
# itself ({src} {source} {sources} {out} {prev} {job} {attempt}
# {param:NAME}, see cluster-configs/targets/README.md), runs each stage's
# argv exactly (no shell added) with only the stage's env (plus the
# worker's default PATH) in the attempt directory under the stage's
# timeout, with stdout into the
# stage's `stdout` file when it names one (stderr alone then goes to the
# log), and checks the declared outputs exist.  Resource limits are not
# applied here.  Every job runs twice: once with the placeholders
# as absolute paths and once relative to the attempt directory, since the
# targets must work either way.  A target whose capabilities are not all
# on the default PATH is skipped ("skipped: nvcc not found"), except the
# capability cuda (an NVIDIA GPU): where `nvidia-smi -L` lists none, jobs
# of a target that needs one run compile-only: their stages run until one
# exits 3 saying "no CUDA device" (the CUDA harnesses' answer without a
# GPU), which then counts as the expected end ("compile-only, no GPU").
# Also checks that the committed reference vectors are what gen_vectors.c
# writes.  Prints "N passed, M failed"; exits 1 when anything failed.
# -v prints every stage's log.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
targets_dir="$root/cluster-configs/targets"
worker_path=/usr/local/bin:/usr/bin:/bin
verbose=0
if [ "${1:-}" = "-v" ]; then
	verbose=1
	shift
fi
only=("$@")

# target|expect|sources (paths from the repository root, FIRST = {source})[|NAME=VALUE,...]
cuda_fir="examples/fir/harness.cu examples/fir/fir_cuda.h examples/cuda_harness.h examples/fir/ref_in.txt examples/fir/ref_out.txt"
cuda_fft="examples/fft/fft.cu examples/fft/harness.cu examples/fft/fft_cuda.h examples/cuda_harness.h examples/fft/ref_in.txt examples/fft/ref_out.txt"
cuda_mixer="examples/mixer/mixer.cu examples/mixer/harness.cu examples/mixer/mixer_cuda.h examples/cuda_harness.h examples/mixer/ref_in.txt examples/mixer/ref_out.txt"
jobs=(
	"x86_64-avx2|pass|examples/fir/fir.c examples/fir/fir.h"
	"x86_64-avx2|pass|examples/fft/fft.c examples/fft/fft.h"
	"x86_64-avx2|pass|examples/mixer/mixer.c examples/mixer/mixer.h"
	"aarch64-neon|pass|examples/fir/fir.c examples/fir/fir.h"
	"aarch64-neon|pass|examples/fft/fft.c examples/fft/fft.h"
	"aarch64-neon|pass|examples/mixer/mixer.c examples/mixer/mixer.h"
	"cuda-sm90|pass|examples/fir/fir.cu examples/fir/fir_cuda.h"
	"cuda-sm90|pass|examples/fft/fft.cu examples/fft/fft_cuda.h"
	"cuda-sm90|pass|examples/mixer/mixer.cu examples/mixer/mixer_cuda.h"
	"cuda-sm90-verify|pass|examples/fir/fir.cu $cuda_fir"
	"cuda-sm90-verify|pass|$cuda_fft"
	"cuda-sm90-verify|pass|$cuda_mixer"
	"cuda-sm90-verify|fail|examples/fir/fir_wrong.cu $cuda_fir"
	"cuda-verify|pass|$cuda_mixer|ARCH=sm_80"
	"x86_64-verify|pass|examples/fir/fir.c examples/fir/harness.c examples/fir/fir.h examples/fir/ref_in.txt examples/fir/ref_out.txt"
	"x86_64-verify|pass|examples/fft/fft.c examples/fft/harness.c examples/fft/fft.h examples/fft/ref_in.txt examples/fft/ref_out.txt"
	"x86_64-verify|pass|examples/mixer/mixer.c examples/mixer/harness.c examples/mixer/mixer.h examples/mixer/ref_in.txt examples/mixer/ref_out.txt"
	"x86_64-verify|fail|examples/fir/fir_wrong.c examples/fir/harness.c examples/fir/fir.h examples/fir/ref_in.txt examples/fir/ref_out.txt"
)

passed=0
failed=0
pass() {
	passed=$((passed + 1))
	echo "ok    $*"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL  $*"
}

# An NVIDIA GPU here?  Without one, targets needing the capability cuda
# run compile-only.
have_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
	have_gpu=1
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/check-targets.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The YAML reader (libyaml, a build dependency of ingot).
if ! cc -std=c11 -O2 -o "$tmp/target_stages" "$here/target_stages.c" -lyaml 2>"$tmp/ts.log"; then
	cat "$tmp/ts.log"
	fail "build examples/target_stages.c (needs libyaml-dev)"
	echo "$passed passed, $failed failed"
	exit 1
fi

# Reference vectors up to date?
vectors_current() {
	local k f
	cc -std=c11 -O2 -o "$tmp/gen_vectors" "$here/gen_vectors.c" -lm || return 1
	mkdir -p "$tmp/vectors" && "$tmp/gen_vectors" "$tmp/vectors" || return 1
	for k in fir fft mixer; do
		for f in ref_in.txt ref_out.txt; do
			cmp -s "$tmp/vectors/$k/$f" "$here/$k/$f" || return 1
		done
	done
}
if vectors_current; then
	pass "reference vectors match gen_vectors.c"
else
	fail "reference vectors differ from gen_vectors.c output (regenerate: see examples/README.md)"
fi

# "2m" / "30s" / "500ms" / "1h" -> seconds for timeout(1); none -> 600.
duration_s() {
	local d="$1"
	case "$d" in
	"") echo 600 ;;
	*ms) echo "$(( ${d%ms} / 1000 )).$(printf '%03d' $(( ${d%ms} % 1000 )))" ;;
	*s) echo "${d%s}" ;;
	*m) echo $(( ${d%m} * 60 )) ;;
	*h) echo $(( ${d%h} * 3600 )) ;;
	*) echo 600 ;;
	esac
}

# run_job TARGET_FILE EXPECT MODE JOBNO PARAMS COMPILE_ONLY SOURCE...
# (PARAMS: NAME=VALUE,...; COMPILE_ONLY 1: the target needs a GPU and
# there is none here)
run_job() {
	local file="$1" expect="$2" mode="$3" jobno="$4" params="$5" compile_only="$6"
	shift 6
	local sources=("$@")
	local attempt="$tmp/job-$jobno-$mode"
	local label
	label="$(basename "$file" .yaml) [$mode] ${sources[0]#examples/}"
	mkdir -p "$attempt/src" "$attempt/logs" "$attempt/out/none"
	local s
	for s in "${sources[@]}"; do
		mkdir -p "$attempt/src/$(dirname "$s")"
		cp "$root/$s" "$attempt/src/$s"
	done
	# Placeholder values: absolute, or relative to the attempt directory (the cwd).
	local base=""
	[ "$mode" = absolute ] && base="$attempt/"
	local p_src="${base}src" p_prev="${base}out/none" p_job="$jobno" p_attempt=1
	local p_sources=()
	for s in "${sources[@]}"; do
		p_sources+=("${base}src/$s")
	done
	local p_source="${p_sources[0]}"

	local rec key val stage="" timeout="" stdout="" index=0 job_ok=1 log="" argv=() envs=() outs=()
	local no_gpu_stop=0 pv pname
	local have_path
	while IFS= read -r -d '' rec; do
		key="${rec%%=*}"
		val="${rec#*=}"
		case "$key" in
		stage) stage="$val" timeout="" stdout="" argv=() envs=() outs=() ;;
		timeout) timeout="$val" ;;
		stdout) stdout="$val" ;;
		env) envs+=("$val") ;;
		arg) argv+=("$val") ;;
		out) outs+=("$val") ;;
		end)
			[ "$job_ok" = 1 ] || continue
			local p_out="${base}out/$index-$stage"
			mkdir -p "$attempt/out/$index-$stage"
			# Substitute: {sources} (a whole word) -> several words; the
			# others anywhere in a word.
			local words=() w
			for w in "${argv[@]}"; do
				if [ "$w" = "{sources}" ]; then
					words+=("${p_sources[@]}")
					continue
				fi
				w="${w//\{src\}/$p_src}"
				w="${w//\{source\}/$p_source}"
				w="${w//\{out\}/$p_out}"
				w="${w//\{prev\}/$p_prev}"
				w="${w//\{job\}/$p_job}"
				w="${w//\{attempt\}/$p_attempt}"
				IFS=',' read -r -a pv <<<"$params"
				for pname in "${pv[@]}"; do
					w="${w//\{param:${pname%%=*}\}/${pname#*=}}"
				done
				if [[ "$w" == *"{param:"* ]]; then
					fail "$label: stage $stage: argv word '$w' names a parameter the job lacks"
					job_ok=0
					continue 2
				fi
				words+=("$w")
			done
			have_path=0
			for w in "${envs[@]}"; do
				[ "${w%%=*}" = PATH ] && have_path=1
			done
			[ "$have_path" = 1 ] || envs+=("PATH=$worker_path")
			log="$attempt/logs/$index-$stage.log"
			local t0=$SECONDS rc=0 stdout_file="$log"
			if [ -n "$stdout" ]; then
				stdout_file="$attempt/out/$index-$stage/$stdout"
				mkdir -p "$(dirname "$stdout_file")"
				outs+=("$stdout")
			fi
			(cd "$attempt" && exec timeout -k 5 "$(duration_s "$timeout")" \
				env -i "${envs[@]}" "${words[@]}") 2>"$log" >"$stdout_file" || rc=$?
			if [ "$verbose" = 1 ]; then
				echo "---- $label: stage $index $stage (exit $rc, $((SECONDS - t0))s)"
				cat "$log"
			fi
			if [ "$rc" -eq 3 ] && [ "$compile_only" = 1 ] && grep -q 'no CUDA device' "$log"; then
				no_gpu_stop=1
				job_ok=0
				continue
			fi
			if [ "$rc" -ne 0 ]; then
				job_ok=0
				[ "$expect" = fail ] || {
					fail "$label: stage $stage exited $rc; log:"
					tail -n 20 "$log" | sed 's/^/      /'
				}
				continue
			fi
			local o missing=""
			for o in "${outs[@]}"; do
				[ -f "$attempt/out/$index-$stage/$o" ] || missing="$missing $o"
			done
			if [ -n "$missing" ]; then
				job_ok=0
				fail "$label: stage $stage: declared outputs missing:$missing"
				continue
			fi
			p_prev="$p_out"
			index=$((index + 1))
			;;
		esac
	done < <("$tmp/target_stages" "$file")

	if [ "$no_gpu_stop" = 1 ]; then
		pass "$label: compile-only, no GPU: $index stages succeeded, then $stage: $(grep -m1 'no CUDA device' "$log")"
	elif [ "$compile_only" = 1 ] && [ "$job_ok" = 1 ]; then
		fail "$label: no GPU here, yet no stage stopped with 'no CUDA device' (exit 3); log:"
		tail -n 20 "$log" | sed 's/^/      /'
	elif [ "$expect" = pass ] && [ "$job_ok" = 1 ]; then
		pass "$label: $index stages succeeded"
	elif [ "$expect" = fail ] && [ "$job_ok" = 0 ]; then
		if grep -q '^FAIL: index' "$log"; then
			pass "$label: failed as it must ($(grep -m1 '^FAIL: index' "$log"))"
		else
			fail "$label: failed, but not with the harness's FAIL line; log:"
			tail -n 20 "$log" | sed 's/^/      /'
		fi
	elif [ "$expect" = fail ]; then
		fail "$label: succeeded, but this kernel is wrong and verification must fail"
	fi
	rm -rf "$attempt"
}

jobno=0
for file in "$targets_dir"/*.yaml; do
	target="$(basename "$file" .yaml)"
	if [ "${#only[@]}" -gt 0 ] && [[ " ${only[*]} " != *" $target "* ]]; then
		continue
	fi
	if ! "$tmp/target_stages" "$file" >"$tmp/records" 2>"$tmp/ts.log"; then
		fail "$target: cannot read $file: $(cat "$tmp/ts.log")"
		continue
	fi
	missing=""
	compile_only=0
	while IFS= read -r -d '' rec; do
		[ "${rec%%=*}" = cap ] || continue
		if [ "${rec#cap=}" = cuda ]; then
			[ "$have_gpu" = 1 ] || compile_only=1
		elif ! PATH="$worker_path" command -v "${rec#cap=}" >/dev/null; then
			missing="$missing ${rec#cap=}"
		fi
	done <"$tmp/records"
	if [ -n "$missing" ]; then
		echo "skip  $target: skipped:$missing not found"
		continue
	fi
	n=0
	for j in "${jobs[@]}"; do
		IFS='|' read -r jt expect srcs params <<<"$j"
		[ "$jt" = "$target" ] || continue
		read -r -a srcarr <<<"$srcs"
		for mode in absolute relative; do
			jobno=$((jobno + 1))
			run_job "$file" "$expect" "$mode" "$jobno" "$params" "$compile_only" "${srcarr[@]}"
		done
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "$target: no example job for this target in check-targets.sh"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
