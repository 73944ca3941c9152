#!/usr/bin/env bash
# The fast test suite again, built with AddressSanitizer + UndefinedBehaviorSanitizer and with
# warnings as errors (CMake preset "asan", build tree build-asan). CI runs it after
# scripts/test.sh; it takes about as long as that (the sanitized build is the slow part).
# LeakSanitizer is on: tests/lsan.supp lists the system libraries whose leaks are not fsbi's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
cd "$root"
cmake --preset asan
cmake --build --preset asan --parallel "$(nproc)"
echo "== fast tests under AddressSanitizer and UndefinedBehaviorSanitizer =="
ctest --preset asan --timeout 900 -j2
