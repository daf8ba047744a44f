#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build/fuzz) and runs each over its seed
# corpus for a while; prints the executions per target.
#   tests/fuzz/run.sh                 about a minute in all (10 s per target)
#   tests/fuzz/run.sh --seconds 600   a longer run of each target
#   tests/fuzz/run.sh --seconds 30 fuzz_packet    only the named targets
# Exits 1 when a target crashes (the input is kept in build/fuzz/crashes/: fix the
# bug, then copy the input into tests/fuzz/corpus/<target>/ as a regression seed).
# Inputs that found new coverage go to build/fuzz/corpus/, never into the source tree.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."

seconds=10
targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    fuzz_*) targets+=("$1"); shift ;;
    *) echo "usage: $0 [--seconds N] [fuzz_TARGET...]" >&2; exit 2 ;;
  esac
done
all=(fuzz_settings fuzz_packet fuzz_proc fuzz_identity fuzz_validate fuzz_nflog fuzz_nft_events
  fuzz_conntrack fuzz_secrets)
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")

build=build/fuzz
# Configured every time (a few seconds), so targets added since the last run exist.
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMAILGUARD_FUZZ=ON -DMAILGUARD_BUILD_TESTS=ON -DMAILGUARD_WERROR=ON >/dev/null
# Only the fuzz targets and what they link (the rules library), not the whole tree.
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

mkdir -p "$build/crashes"
status=0
printf '%-15s %12s %10s %8s %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/$t
  work=$build/corpus/$t
  mkdir -p "$work"
  log=$build/$t.log
  # -timeout: one input taking a second is a hang worth failing on; -rss_limit_mb:
  # a parser that allocates without bound is a finding too.
  if "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=1024 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
      "$work" "$seeds" >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log)"
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "$work" -type f | wc -l)
  printf '%-15s %12s %10s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$units" "$result"
  if [[ $result != ok ]]; then
    grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" || true
    ls -1 "$build/crashes/$t-"* 2>/dev/null | tail -1
  fi
done
exit $status
