#!/usr/bin/env bash
# The one test command: installs the packages, builds, and runs every test.
#   sudo ./tests/run.sh            unit + integration (network namespaces) tests
#   sudo ./tests/run.sh -L unit    pass extra arguments to ctest (here: unit tests only)
# Tests that install firewall rules create their own network namespace each
# (`unshare -n`): the firewall of this machine's own namespace is never touched.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "tests/run.sh must run as root: it installs packages and creates network namespaces." >&2
  echo "Try: sudo ./tests/run.sh" >&2
  exit 1
fi

# Each phase prints how long it took: CI must stay under 30 minutes on 2 cores.
phase() { echo "== ${1}: $((SECONDS - phase_start)) s (total $SECONDS s)"; phase_start=$SECONDS; }
phase_start=$SECONDS

./install/deps.sh --test
phase "packages"

jobs=$(nproc)
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"
phase "release build"

# Sanitizers: every test again under the ASan+UBSan preset; guardd, guardctl and the
# test tools of the integration tests are sanitized too (about a minute more
# than the unit tests alone, the build is the same).
cmake --preset debug >/dev/null
cmake --build --preset debug -j"$jobs"
phase "debug build"

status=0
rm -f build/{release,debug}/Testing/Temporary/LastTestsFailed.log
echo "== release build: every test"
ctest --preset release -j2 "$@" || status=1
phase "release tests"
echo "== debug build (ASan+UBSan): every test"
ctest --preset debug -j2 "$@" || status=1
phase "debug tests"

# --- Fuzzing ----------------------------------------------------------
# Five seconds per target of libFuzzer (clang, ASan+UBSan; CI has 30 minutes in all)
# over the settings, packet, /proc, identity, D-Bus argument, NFLOG probe, nft event,
# conntrack and secrets parsers. Builds only the fuzz targets and
# the rules library, in build/fuzz. Longer runs: tests/fuzz/run.sh --seconds N.
echo "== fuzzing (libFuzzer, ASan+UBSan): 5 s per target"
tests/fuzz/run.sh --seconds 5 || status=1
phase "fuzzing"
# ----------------------------------------------------------------------------------
# The failures again at the very end, where a log's tail shows them.
if [[ $status -ne 0 ]]; then
  for preset in release debug; do
    failed=build/$preset/Testing/Temporary/LastTestsFailed.log
    if [[ -s $failed ]]; then
      echo "== failed in the $preset build:"
      sed 's/^/   /' "$failed"
      # The last lines each failed test printed (ctest keeps them in LastTest.log).
      while IFS=: read -r _ name; do
        echo "-- $name ($preset), the end of its output:"
        awk -v name="$name" '$0 ~ "Testing: " name "$" {on = 1; next}
                             on && /^<end of output>/ {exit}
                             on {print}' "build/$preset/Testing/Temporary/LastTest.log" |
          tail -n 25 | sed 's/^/   | /'
      done < "$failed"
    fi
  done
fi
exit $status
