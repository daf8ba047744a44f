#!/bin/sh
# The cost of guarding, measured: tests/bench/run.sh [--quick] [--only 1,3]
# Root only; every rule and all traffic stay inside network namespaces it creates and
# removes; BPF programs attach only to a child cgroup of a cgroup2 hierarchy it mounts in
# its own mount namespace. Builds what it needs into build/bench (Release) unless --no-build is given,
# then runs bench.py, which prints the figures and writes tests/bench/results/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build="$src/build/bench"
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/bench/run.sh needs root (network namespaces, nftables, NFQUEUE)" >&2
  exit 1
fi
if [ "${1:-}" = "--no-build" ]; then
  shift
else
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target guardd guardctl mg-seed mg-bench -j"$(nproc)" >/dev/null
fi
# A private mount namespace: the cgroup2 hierarchy the kernel benchmarks mount (and the
# /run/netns bind mounts) exist only there and go when it ends, even after a crash.
MG_BENCH_OUTER_MNT=$(readlink /proc/self/ns/mnt)
export MG_BENCH_OUTER_MNT
exec unshare -m --propagation private python3 "$here/bench.py" --build "$build" "$@"
