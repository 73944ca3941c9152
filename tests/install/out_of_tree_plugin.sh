#!/usr/bin/env bash
# The out-of-tree plugin path, end to end, as a user takes it:
#   1. install the already-built fsbi into a fresh prefix;
#   2. configure and build examples/custom_simulator against that prefix only
#      (find_package(fsbi) + fsbi_add_simulator());
#   3. check the plugin exports exactly one symbol, fsbi_simulator_entry, and links nothing of fsbi;
#   4. run the installed `fsbi` with it: by path, by name via FSBI_PLUGIN_PATH and via
#      --plugin-path, with a bad option, `fsbi plugins` and `fsbi info`.
#
# Usage (ctest runs it as test install.out_of_tree_plugin):
#   bash tests/install/out_of_tree_plugin.sh <fsbi source dir> <fsbi build dir>
# Set FSBI_KEEP_TMP=1 to keep the scratch folder for inspection.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <fsbi source dir> <fsbi build dir>" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
bin=$(cd "$2" && pwd)

example_src="$src/examples/custom_simulator"
plugin_name=decay_counts
n=200

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsbi-out-of-tree.XXXXXX")
cleanup() {
  local rc=$?
  if [[ "${FSBI_KEEP_TMP:-0}" == 1 ]]; then
    echo "kept scratch folder $tmp"
  else
    rm -rf "$tmp"
  fi
  if [[ $rc -ne 0 ]]; then
    echo "FAILED: out-of-tree plugin check (exit $rc); rerun with FSBI_KEEP_TMP=1 to inspect" >&2
  fi
  exit $rc
}
trap cleanup EXIT
prefix="$tmp/prefix"
build="$tmp/build"

# The plugin search path must be exactly what each step sets, not the caller's.
unset FSBI_PLUGIN_PATH

step() { printf '\n==> %s\n' "$*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run <log name> <command...>: echoes the command, captures stdout/stderr into $tmp/<log>.out/.err,
# shows both and fails if the exit code is not 0.
run() {
  local log=$1
  shift
  echo "+ $*"
  local rc=0
  "$@" >"$tmp/$log.out" 2>"$tmp/$log.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "--- stdout:" >&2
    cat "$tmp/$log.out" >&2
    echo "--- stderr:" >&2
    cat "$tmp/$log.err" >&2
    fail "exit code $rc from: $*"
  fi
}

# expect_in <log> <text> <what> [grep flags]: the captured stdout of <log> contains <text>
# (-w: as a whole word, so "200" is not matched by the "2025" of a date).
expect_in() {
  local log=$1 text=$2 what=$3
  shift 3
  if ! grep -qF "$@" -e "$text" "$tmp/$log.out"; then
    echo "--- stdout of $log:" >&2
    cat "$tmp/$log.out" >&2
    echo "--- stderr of $log:" >&2
    cat "$tmp/$log.err" >&2
    fail "$what: expected '$text' in the output"
  fi
}

# ---- 1. install ------------------------------------------------------------------------------
step "installing fsbi from $bin into $prefix"
run install cmake --install "$bin" --prefix "$prefix"

fsbi="$prefix/bin/fsbi"
[[ -x "$fsbi" ]] || fail "the installed CLI $fsbi is missing or not executable"
for header in fsbi/simulator_abi.h fsbi/sdk.hpp; do
  [[ -f "$prefix/include/$header" ]] || fail "the installed SDK header $prefix/include/$header is missing"
done
config=$(find "$prefix" -name fsbiConfig.cmake -print -quit)
[[ -n "$config" ]] || fail "no fsbiConfig.cmake under $prefix: find_package(fsbi) cannot work"
echo "found CLI $fsbi and package config $config"

# ---- 2. configure and build the example against the prefix -----------------------------------
step "configuring $example_src against $prefix"
cmake_args=(-S "$example_src" -B "$build" -DCMAKE_BUILD_TYPE=Release
            -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
if command -v ninja >/dev/null 2>&1; then
  cmake_args+=(-G Ninja)
fi
# Build with the compiler fsbi was built with.
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$bin/CMakeCache.txt" 2>/dev/null || true)
if [[ -n "$cxx" ]]; then
  cmake_args+=(-DCMAKE_CXX_COMPILER="$cxx")
fi
run configure cmake "${cmake_args[@]}"

fsbi_dir=$(sed -n 's/^fsbi_DIR:PATH=//p' "$build/CMakeCache.txt")
case "$fsbi_dir" in
  "$prefix"/*) echo "find_package(fsbi) used $fsbi_dir" ;;
  *) fail "find_package(fsbi) found '$fsbi_dir', not the package installed under $prefix" ;;
esac

step "building the example"
run build cmake --build "$build"
so="$build/$plugin_name.so"
[[ -f "$so" ]] || fail "the build did not produce $so"
echo "built $so"

# ---- 3. the plugin boundary ------------------------------------------------------------------
step "checking the exported symbols of $so"
run nm nm -D --defined-only "$so"
exported=$(awk 'NF >= 2 { print $NF }' "$tmp/nm.out" | sort -u | tr '\n' ' ')
echo "exported: $exported"
[[ "$exported" == "fsbi_simulator_entry " ]] ||
  fail "$so must export exactly fsbi_simulator_entry, but exports: $exported"

if command -v readelf >/dev/null 2>&1; then
  run readelf readelf -d "$so"
  if grep -i 'NEEDED.*fsbi' "$tmp/readelf.out"; then
    fail "$so links a library of fsbi; a plugin must link nothing of fsbi"
  fi
fi

# ---- 4. running it with the installed fsbi ---------------------------------------------------
step "simulating by path"
run sim_path "$fsbi" simulate --simulator "$so" -n "$n" -o "$tmp/out.h5" --seed 3 --quiet
[[ -s "$tmp/out.h5" ]] || fail "fsbi simulate exited 0 but wrote no $tmp/out.h5"

step "fsbi info on the result"
run info_path "$fsbi" info "$tmp/out.h5"
cat "$tmp/info_path.out"
expect_in info_path "$plugin_name" "fsbi info $tmp/out.h5 (simulator name)"
expect_in info_path "$n" "fsbi info $tmp/out.h5 (number of simulations)" -w

step "simulating by name, folder on FSBI_PLUGIN_PATH"
run sim_env env FSBI_PLUGIN_PATH="$(dirname "$so")" \
  "$fsbi" simulate --simulator "$plugin_name" -n "$n" -o "$tmp/out_by_name.h5" --seed 3 --quiet
[[ -s "$tmp/out_by_name.h5" ]] || fail "fsbi simulate by name wrote no $tmp/out_by_name.h5"
run info_env "$fsbi" info "$tmp/out_by_name.h5"
expect_in info_env "$plugin_name" "fsbi info $tmp/out_by_name.h5 (simulator name)"
expect_in info_env "$n" "fsbi info $tmp/out_by_name.h5 (number of simulations)" -w
# Same plugin, same seed: the same data, whether loaded by path or by name. Compare the summary
# statistics `fsbi info` prints for theta and x (everything from the "theta:" line on).
if ! diff <(sed -n '/theta:/,$p' "$tmp/info_path.out") <(sed -n '/theta:/,$p' "$tmp/info_env.out"); then
  fail "runs with the same seed by path and by name differ (diff above)"
fi
grep -q 'theta:' "$tmp/info_path.out" || echo "note: fsbi info prints no 'theta:' section; data not compared"

step "simulating by name with --plugin-path and simulator options"
run sim_flag "$fsbi" simulate --plugin-path "$(dirname "$so")" --simulator "$plugin_name" \
  -n 50 -o "$tmp/out_opts.h5" --seed 4 --quiet --sim-opt bins=5 --sim-opt background=0.5
[[ -s "$tmp/out_opts.h5" ]] || fail "fsbi simulate --plugin-path wrote no $tmp/out_opts.h5"
run info_flag "$fsbi" info "$tmp/out_opts.h5"
expect_in info_flag "$plugin_name" "fsbi info $tmp/out_opts.h5 (simulator name)"

step "a bad simulator option is refused with a message naming it"
echo "+ $fsbi simulate --simulator $so -n 10 -o $tmp/bad.h5 --quiet --sim-opt bins=0"
rc=0
"$fsbi" simulate --simulator "$so" -n 10 -o "$tmp/bad.h5" --quiet --sim-opt bins=0 \
  >"$tmp/bad.out" 2>"$tmp/bad.err" || rc=$?
cat "$tmp/bad.err"
[[ $rc -ne 0 ]] || fail "fsbi simulate accepted the invalid option bins=0"
grep -q "bins" "$tmp/bad.err" "$tmp/bad.out" ||
  fail "the error for bins=0 does not name the option 'bins'"

step "fsbi plugins lists it (FSBI_PLUGIN_PATH) next to the bundled simulators"
run plugins env FSBI_PLUGIN_PATH="$(dirname "$so")" "$fsbi" plugins
cat "$tmp/plugins.out"
grep -F "$plugin_name" "$tmp/plugins.out" | grep -qF "$plugin_name.so" ||
  fail "fsbi plugins has no line with the name $plugin_name and the file $plugin_name.so"
expect_in plugins two_moons "fsbi plugins (a bundled simulator, found next to the installed CLI)"

step "fsbi plugins --verbose --plugin-path"
run plugins_verbose "$fsbi" plugins --verbose --plugin-path "$(dirname "$so")"
expect_in plugins_verbose "$plugin_name" "fsbi plugins --verbose --plugin-path"

step "OK: the out-of-tree plugin builds against the installed fsbi and runs"
