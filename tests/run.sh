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

# Sanitizers: the unit tests again under the ASan+UBSan preset.
cmake --preset debug >/dev/null
cmake --build --preset debug -j"$jobs"

status=0
echo "== release build: every test"
ctest --preset release -j2 "$@" || status=1
echo "== debug build (ASan+UBSan): unit tests"
ctest --preset debug -j2 -L unit "$@" || status=1
exit $status
