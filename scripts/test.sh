#!/usr/bin/env bash
# The README's second command: installs what fsbi needs, builds it, and runs the whole test
# suite in two steps: the fast tests, then the long statistical checks (ctest label
# "statistical": training accuracy against analytic scores, ...), each with its own time bound.
# FSBI_SKIP_STATISTICAL=1 skips the second step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
cd "$root/build"
echo "== fast tests =="
ctest --output-on-failure --timeout 900 -j2 -LE statistical
if [[ "${FSBI_SKIP_STATISTICAL:-0}" != 1 ]]; then
  echo "== statistical tests =="
  timeout 3000 ctest --output-on-failure --timeout 1800 -j2 -L statistical
fi
