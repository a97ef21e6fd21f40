#!/usr/bin/env bash
# Builds every case under testdata/build/ with the real kiln binary, as the
# unprivileged test user and as root, then checks the image the way any OCI
# consumer sees it: `kiln save` to an OCI archive, flattened by an
# independent checker (ociflat.py), and the case's `expect` assertions.
# A second build of each case must be served entirely from the cache.
#
# A case directory holds: Containerfile; context/ (optional, copied to a
# temp dir); setup (optional bash run in that copy); flags (optional extra
# build flags); expect (bash assertions, see the helpers below) or fail
# (first line: the exit status; further lines: text stderr must contain);
# export (optional marker: `--output type=tar` must hold the same paths).
set -u
. "$(dirname "$0")/lib.sh"
CASES_DIR=${KILN_TESTDATA:-$KILN_SOURCE_ROOT/testdata}/build
ONLY=${KILN_CASE:-}

. "$(dirname "$0")/expect.sh"  # the assertions used by expect files

run_case() {  # run_case MODE STORE WORK CASEDIR
  local mode=$1 store=$2 work=$3 dir=$4 name
  name=$(basename "$dir")
  local ctx="$work/ctx-$name" img="localhost/case-$name:latest"
  rm -rf "$ctx"; mkdir -p "$ctx"
  [ -d "$dir/context" ] && cp -a "$dir/context/." "$ctx/"
  if [ -f "$dir/setup" ]; then (cd "$ctx" && bash "$dir/setup") || { tap_not_ok "$mode $name: setup failed"; return; }; fi
  [ "$(id -u)" -eq 0 ] && [ "$mode" = user ] && chown -R "$KILN_TEST_USER:" "$ctx"  # user and group, as a checkout of theirs
  local flags=()
  [ -f "$dir/flags" ] && read -r -a flags <"$dir/flags"
  local err="$work/$name.err"
  kiln_as "$mode" "$store" build -f "$dir/Containerfile" -t "case-$name" --progress=plain "${flags[@]}" "$ctx" \
    >"$work/$name.out" 2>"$err"
  local rc=$?
  if [ -f "$dir/fail" ]; then
    local want_rc; want_rc=$(head -1 "$dir/fail")
    local ok=1
    [ "$rc" = "$want_rc" ] || { echo "    exit status $rc, want $want_rc" >&2; ok=0; }
    while IFS= read -r text; do
      grep -qF -- "$text" "$err" || { echo "    stderr lacks: $text" >&2; ok=0; }
    done < <(tail -n +2 "$dir/fail")
    if [ $ok = 1 ]; then tap_ok "$mode $name (fails as expected)"; else tap_not_ok "$mode $name"; diag <"$err"; fi
    return
  fi
  if [ $rc -ne 0 ]; then tap_not_ok "$mode $name: build failed with $rc"; diag <"$err"; return; fi
  OUT="$work/out-$name"; rm -rf "$OUT"; mkdir -p "$OUT"
  kiln_as "$mode" "$store" save --format oci-archive -o "$work/$name.tar" "case-$name" 2>"$err.save" \
    || { tap_not_ok "$mode $name: save failed"; diag <"$err.save"; return; }
  python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$work/$name.tar" "$OUT" 2>"$err.flat" \
    || { tap_not_ok "$mode $name: flatten failed"; diag <"$err.flat"; return; }
  FAILS=0
  (cd "$OUT" && . "$dir/expect") 2>"$err.expect"
  local expect_rc=$?
  if [ $expect_rc -ne 0 ] || [ -s "$err.expect" ]; then
    tap_not_ok "$mode $name"; diag <"$err.expect"; diag <"$err"; return
  fi
  # An `export` marker: --output type=tar must write the same tree the image has.
  if [ -f "$dir/export" ]; then
    kiln_as "$mode" "$store" build -f "$dir/Containerfile" --progress=plain -o "type=tar,dest=$work/$name.rootfs.tar" \
      "${flags[@]}" "$ctx" >/dev/null 2>"$err.export" || { tap_not_ok "$mode $name: --output type=tar failed"; diag <"$err.export"; return; }
    if ! diff <(tar -tf "$work/$name.rootfs.tar" | sed 's|^\./||; s|/$||' | grep -v '^$' | sort) \
              <(cut -f1 "$OUT/list" | sed 's|^/||' | grep -v '^\.\?$' | sort) >"$err.export"; then
      tap_not_ok "$mode $name: --output type=tar differs from the image"; diag <"$err.export"; return
    fi
  fi
  # The same build again: every step must come from the cache.
  kiln_as "$mode" "$store" build -f "$dir/Containerfile" -t "case-$name" --progress=json "${flags[@]}" "$ctx" \
    >"$work/$name.out2" 2>"$err.2" || { tap_not_ok "$mode $name: rebuild failed"; diag <"$err.2"; return; }
  if grep -q '"status":"done"' "$err.2"; then
    tap_not_ok "$mode $name: rebuild ran steps instead of using the cache"; grep '"status":"done"' "$err.2" | diag; return
  fi
  tap_ok "$mode $name"
}

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store="$work/store"
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import the busybox base"; continue
  fi
  for dir in "$CASES_DIR"/*/; do
    dir=${dir%/}
    [ -n "$ONLY" ] && [ "$(basename "$dir")" != "$ONLY" ] && continue
    run_case "$mode" "$store" "$work" "$dir"
  done
  [ -n "${KILN_KEEP:-}" ] || rm -rf "$work"
done
tap_done
