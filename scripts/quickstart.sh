#!/usr/bin/env bash
# The README's first command: installs what fsbi needs, builds it, and runs the main job on the
# built-in default example (two_moons), leaving its results under ./quickstart/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
fsbi="$root/build/bin/fsbi"
out="$root/quickstart"
mkdir -p "$out"
echo
echo "== fsbi simulate: 10000 two_moons simulations =="
"$fsbi" simulate --simulator two_moons --num-simulations 10000 --seed 1 \
  --output "$out/two_moons.h5" --overwrite
echo
echo "== fsbi info =="
"$fsbi" info "$out/two_moons.h5"
