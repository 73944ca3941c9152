#!/usr/bin/env bash
# The README's second command: installs what fsbi needs, builds it, and runs the whole test
# suite. Long statistical checks carry the ctest label "statistical" and run only with
# FSBI_STATISTICAL=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
cd "$root/build"
ctest --output-on-failure --timeout 900 -j2 -LE statistical
if [[ "${FSBI_STATISTICAL:-0}" == 1 ]]; then
  ctest --output-on-failure --timeout 3600 -L statistical
fi
