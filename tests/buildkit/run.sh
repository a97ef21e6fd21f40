#!/usr/bin/env bash
# BuildKit's own Dockerfile tests, ported (issue [2.2]): builds every case
# under testdata/buildkit/ with the real kiln binary, as the unprivileged test
# user and as root, and checks what the BuildKit test asserts the way a user
# sees it: the image flattened by tests/integration/ociflat.py (files, owners,
# modes, config), the build output, or a failure and its message.
#
# A case directory (testdata/buildkit/README.md describes the files) holds the
# Go test it comes from (source), a Containerfile and context, and what the
# BuildKit test asserts: expect (checks of the flattened image), fail (the
# build must fail with a message) or check (further builds: cache, IDs). When
# kiln does not build it as BuildKit does, a difference (deliberate) or
# known-failure (a bug, with a reproducer) file says why; those cases run too
# and are reported as TAP TODO: explained, not passed.
#
# Prints TAP, then "# BuildKit cases: N/M" (N cases pass in every mode, M
# cases in all); the plain line goes to $KILN_BUILDKIT_SUMMARY when set, which
# scripts/test.sh prints. KILN_CASE=pattern (a bash glob) runs the matching
# cases; KILN_BK_JOBS=n builds n cases at a time (default 3).
set -u
shopt -s extglob
. "$(dirname "$0")/../integration/lib.sh"
. "$KILN_SOURCE_ROOT/tests/integration/expect.sh"
CASES_DIR=${KILN_TESTDATA:-$KILN_SOURCE_ROOT/testdata}/buildkit
ONLY=${KILN_CASE:-}
JOBS=${KILN_BK_JOBS:-3}
STEP_TIMEOUT=${KILN_BK_TIMEOUT:-300}

kiln_t() {  # kiln_t MODE STORE ARGS...: kiln_as with a time limit
  local mode=$1 store=$2; shift 2
  as_mode "$mode" timeout -k 5 "$STEP_TIMEOUT" env KILN_ROOT="$store" SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-}" "$KILN_BIN" "$@"
}

# run_case MODE STORE WORK CASEDIR: writes $WORK/res/NAME (first line PASS or
# FAIL: why) and $WORK/res/NAME.diag (what to show when it fails)
run_case() {
  local mode=$1 store=$2 work=$3 dir=$4 name
  name=$(basename "$dir")
  local res="$work/res/$name" ctx="$work/ctx-$name" err="$work/$name.log"
  exec 3>"$res.diag"
  verdict() { echo "$*" >"$res"; }
  rm -rf "$ctx"; mkdir -p "$ctx"
  [ -d "$dir/context" ] && cp -a "$dir/context/." "$ctx/"
  if [ -f "$dir/setup" ]; then
    (cd "$ctx" && bash "$dir/setup") >&3 2>&1 || { verdict "FAIL: setup failed"; return; }
  fi
  [ "$(id -u)" -eq 0 ] && [ "$mode" = user ] && chown -R "$KILN_TEST_USER:" "$ctx"
  local flags=() f=()
  if [ -f "$dir/flags" ]; then
    read -r -a f < <(sed "s|@CTX@|$ctx|g" "$dir/flags")
    flags=("${f[@]}")
  fi
  [ -f "$dir/Containerfile" ] && flags=(-f "$dir/Containerfile" "${flags[@]}")
  local base stem
  for base in "$dir"/base*.Containerfile; do  # images the case builds FROM, built first in name order
    [ -f "$base" ] || continue
    stem=$(basename "$base" .Containerfile)
    kiln_t "$mode" "$store" build -t "bk-$name-$stem" -f "$base" --progress=plain "$ctx" >"$err" 2>&1 \
      || { verdict "FAIL: $stem.Containerfile failed"; tail -20 "$err" >&3; return; }
  done
  kiln_t "$mode" "$store" build -t "bk-$name" --progress=plain "${flags[@]}" "$ctx" >"$err" 2>&1
  local rc=$?
  if [ -f "$dir/fail" ]; then
    local want_rc ok=1 text
    want_rc=$(head -1 "$dir/fail")
    if [ "$want_rc" = '*' ]; then
      [ "$rc" -ne 0 ] || { echo "exit status 0, want a failure" >&3; ok=0; }
    else
      [ "$rc" = "$want_rc" ] || { echo "exit status $rc, want $want_rc" >&3; ok=0; }
    fi
    while IFS= read -r text; do
      [ -z "$text" ] || grep -qF -- "$text" "$err" || { echo "output lacks: $text" >&3; ok=0; }
    done < <(tail -n +2 "$dir/fail")
    tail -20 "$err" >&3
    if [ $ok = 1 ]; then verdict "PASS (fails as expected)"; else verdict "FAIL: not the expected failure"; fi
    return
  fi
  if [ $rc -ne 0 ]; then verdict "FAIL: build failed with $rc"; tail -30 "$err" >&3; return; fi
  if [ -f "$dir/check" ]; then  # more builds and what they must show (cache, reproducibility)
    kiln() { kiln_t "$mode" "$store" "$@"; }
    file_of() {  # file_of IMAGE PATH: the file's content in the image
      local t; t=$(mktemp -d -p "$work"); chmod 777 "$t"
      kiln save --format oci-archive -o "$t/i.tar" "$1" && python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$t/i.tar" "$t/o" >/dev/null \
        && cat "$t/o/root$2"; local rc=$?; rm -rf "$t"; return $rc
    }
    (cd "$ctx" && CASE_DIR=$dir CASE_NAME=$name FLAT=$KILN_SOURCE_ROOT/tests/integration/ociflat.py && set -e && . "$dir/check") >"$res.check" 2>&1 \
      || { verdict "FAIL: check"; cat "$res.check" >&3; return; }
  fi
  # Without an expect file the build succeeding is the assertion (its RUN steps check).
  [ -f "$dir/expect" ] || { verdict "PASS"; return; }
  OUT="$work/out-$name"; rm -rf "$OUT"; mkdir -p "$OUT"
  kiln_t "$mode" "$store" save --format oci-archive -o "$work/$name.tar" "bk-$name" >&3 2>&1 \
    || { verdict "FAIL: save failed"; return; }
  python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$work/$name.tar" "$OUT" >&3 2>&1 \
    || { verdict "FAIL: flatten failed"; return; }
  rm -f "$work/$name.tar"
  FAILS=0
  LOG=$err
  (cd "$OUT" && . "$dir/expect") 2>"$res.expect"
  local expect_rc=$?
  if [ $expect_rc -ne 0 ] || [ -s "$res.expect" ]; then
    verdict "FAIL: assertions"; cat "$res.expect" >&3; tail -15 "$err" >&3; return
  fi
  verdict "PASS"
}

declare -A passed_all
cases=()
for dir in "$CASES_DIR"/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  [ -n "$ONLY" ] && [[ $name != $ONLY ]] && continue
  cases+=("$name")
  passed_all[$name]=1
done

start=$SECONDS
for mode in $(test_modes); do
  t0=$SECONDS
  work=$(make_workdir "$mode")
  store="$work/store"
  mkdir -p "$work/res"
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import the busybox base"; continue
  fi
  running=0
  for name in "${cases[@]}"; do
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
    run_case "$mode" "$store" "$work" "$CASES_DIR/$name" &
    running=$((running + 1))
  done
  wait
  for name in "${cases[@]}"; do
    dir="$CASES_DIR/$name"
    r=$(head -1 "$work/res/$name" 2>/dev/null || echo "FAIL: no result")
    src=$(head -1 "$dir/source" 2>/dev/null)
    if [ "${r%% *}" = PASS ]; then
      if [ -f "$dir/known-failure" ] || [ -f "$dir/difference" ]; then
        tap_ok "$mode $name ($src) passes: drop its known-failure/difference file"
      else
        tap_ok "$mode $name ($src)"
      fi
      continue
    fi
    passed_all[$name]=0
    if [ -f "$dir/difference" ]; then
      TAP_N=$((TAP_N + 1)); echo "not ok $TAP_N - $mode $name ($src) # TODO deliberate difference: $(head -1 "$dir/difference")"
    elif [ -f "$dir/known-failure" ]; then
      TAP_N=$((TAP_N + 1)); echo "not ok $TAP_N - $mode $name ($src) # TODO known failure: $(head -1 "$dir/known-failure")"
    else
      tap_not_ok "$mode $name ($src): ${r#FAIL: }"
      diag <"$work/res/$name.diag"
    fi
  done
  echo "# $mode: $((SECONDS - t0)) s"
  [ -n "${KILN_KEEP:-}" ] || rm -rf "$work"
done

n=0; d=0; k=0; u=0
for name in "${cases[@]}"; do
  if [ "${passed_all[$name]}" = 1 ]; then n=$((n + 1))
  elif [ -f "$CASES_DIR/$name/difference" ]; then d=$((d + 1))
  elif [ -f "$CASES_DIR/$name/known-failure" ]; then k=$((k + 1))
  else u=$((u + 1)); fi
done
line="BuildKit cases: $n/${#cases[@]}"
detail="$d deliberate differences, $k known failures, $u unexplained failures"
echo "# $line ($detail; $((SECONDS - start)) s)"
if [ -n "${KILN_BUILDKIT_SUMMARY:-}" ]; then
  if [ -n "$ONLY" ]; then echo "$line (filtered: $ONLY)"; else echo "$line ($detail)"; fi >"$KILN_BUILDKIT_SUMMARY"
fi
tap_done
