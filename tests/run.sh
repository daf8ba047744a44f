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

./install/deps.sh --test

jobs=$(nproc)
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"

# Sanitizers: every test again under the ASan+UBSan preset; guardd, guardctl and the
# test tools of the integration tests are sanitized too (about a minute more
# than the unit tests alone, the build is the same).
cmake --preset debug >/dev/null
cmake --build --preset debug -j"$jobs"

status=0
echo "== release build: every test"
ctest --preset release -j2 "$@" || status=1
echo "== debug build (ASan+UBSan): every test"
ctest --preset debug -j2 "$@" || status=1

# --- Fuzzing ----------------------------------------------------------
# About a minute of libFuzzer (clang, ASan+UBSan) over the settings, packet, /proc,
# identity, D-Bus argument and NFLOG probe parsers. Builds only the fuzz targets and
# the rules library, in build/fuzz. Longer runs: tests/fuzz/run.sh --seconds N.
echo "== fuzzing (libFuzzer, ASan+UBSan): 10 s per target"
tests/fuzz/run.sh --seconds 10 || status=1
# ----------------------------------------------------------------------------------
exit $status
