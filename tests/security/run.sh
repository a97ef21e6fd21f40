#!/usr/bin/env bash
# Hostile inputs through the real CLI (docs/security.md, issue [2.1] item 3):
# runs every tests/security/cases/*.sh once per mode (the unprivileged test
# user and root, see test_modes in tests/integration/lib.sh), prints one TAP
# line per (case, mode) and a summary of the H-ids contained.
#
# Case contract (docs/security.md repeats it):
#   - A case is an executable bash file run as `bash FILE MODE WORKDIR`.
#     MODE is `user` or `root`; WORKDIR is a fresh directory owned by the
#     mode's user (it holds busybox.tar, the offline base image, made once by
#     this runner, so import_busybox does not rebuild it). The case runs as
#     root; it runs kiln as the mode's user with kiln_as/as_mode.
#   - Environment: KILN_BIN, KILN_SOURCE_ROOT, KILN_TEST_USER (the
#     unprivileged user; may be empty when only root runs). A case may
#     `source "$KILN_SOURCE_ROOT/tests/integration/lib.sh"` for kiln_as,
#     as_mode, import_busybox, start_registry (not the tap_* helpers: the
#     runner writes the TAP lines).
#   - Exit status: 0 = contained, 1 = not contained (say why on stderr),
#     77 = skipped (say why on the last line of stderr). A hole that is known
#     and too big to fix now exits 77 with a line starting "KNOWN HOLE:"; it
#     is reported as a hole and never counted as contained.
#   - A case gets KILN_SECURITY_TIMEOUT seconds (120) per mode, then SIGTERM
#     to its whole process group (and SIGKILL 5 s later): a timeout fails.
#     Slow cases (more than ~20 s) run only with KILN_SECURITY_LONG=1 and exit
#     77 otherwise.
#   - Names: hNN_<short>.sh counts toward H-id NN of docs/security.md;
#     xNN_<short>.sh is an extra case (an issue item with no H-id): run and
#     reported, not counted in N/52.
# An H-id is contained when it has at least one hNN_ case, no (case, mode)
# failed or is a known hole, and every case passed in at least one mode.
#
# Knobs: KILN_SECURITY_FILTER (an extended regex on case names, e.g. 'h0[1-5]'),
# KILN_SECURITY_JOBS (cases run at once, default 3), KILN_SECURITY_SUMMARY (a
# file that gets the plain line "hostile inputs: N/52 contained"),
# KILN_KEEP=1 (keep the work dirs).
set -u
KILN_SOURCE_ROOT=${KILN_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export KILN_SOURCE_ROOT
if [ -z "${KILN_TEST_USER:-}" ] && [ "$(id -u)" -eq 0 ] && id kiln-test >/dev/null 2>&1; then
  KILN_TEST_USER=kiln-test
fi
export KILN_TEST_USER=${KILN_TEST_USER:-}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
export KILN_BIN

CASES_DIR=${KILN_SECURITY_CASES:-$KILN_SOURCE_ROOT/tests/security/cases}
TIMEOUT=${KILN_SECURITY_TIMEOUT:-120}
JOBS=${KILN_SECURITY_JOBS:-3}
FILTER=${KILN_SECURITY_FILTER:-}
TOTAL_IDS=52

SHARED=$(mktemp -d /tmp/kiln-sec.XXXXXX)
chmod 755 "$SHARED"
cleanup() { [ -n "${KILN_KEEP:-}" ] || rm -rf "$SHARED"; }
trap cleanup EXIT

cases=()
for f in "$CASES_DIR"/*.sh; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .sh)
  if [ -n "$FILTER" ] && ! [[ $name =~ $FILTER ]]; then continue; fi
  cases+=("$name")
done

if ! "$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$SHARED/busybox.tar" >"$SHARED/busybox.log" 2>&1; then
  echo "# cannot make the busybox rootfs:"; sed 's/^/# /' "$SHARED/busybox.log"
fi
[ -f "$SHARED/busybox.tar" ] && chmod 644 "$SHARED/busybox.tar"

modes=$(test_modes)

# run_one CASE MODE: runs the case in a fresh work dir; leaves RC and the log
# in $SHARED/res/CASE.MODE.{rc,log,secs}.
run_one() {
  local name=$1 mode=$2 work rc t0 t1
  work=$(make_workdir "$mode")
  if [ -f "$SHARED/busybox.tar" ]; then
    cp "$SHARED/busybox.tar" "$work/busybox.tar"
    [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$work/busybox.tar"
  fi
  t0=$(date +%s.%N)
  timeout -k 5 "$TIMEOUT" bash "$CASES_DIR/$name.sh" "$mode" "$work" >"$SHARED/res/$name.$mode.log" 2>&1 </dev/null
  rc=$?
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }' >"$SHARED/res/$name.$mode.secs"
  if [ -n "${KILN_KEEP:-}" ]; then
    echo "$work" >"$SHARED/res/$name.$mode.work"
  else
    rm -rf "$work" 2>/dev/null || kiln_as "$mode" "$work/store" unshare rm -rf "$work" 2>/dev/null || true
    rm -rf "$work" 2>/dev/null || true
  fi
  echo "$rc" >"$SHARED/res/$name.$mode.rc"  # last: the parent polls for it
}

mkdir -p "$SHARED/res"
TAP_N=0
FAILED=0
report() {  # report CASE MODE: one TAP line, the log as diagnostics
  local name=$1 mode=$2 rc log secs why
  rc=$(cat "$SHARED/res/$name.$mode.rc")
  log="$SHARED/res/$name.$mode.log"
  secs=$(cat "$SHARED/res/$name.$mode.secs")
  TAP_N=$((TAP_N + 1))
  case $rc in
    0) echo "ok $TAP_N - $name ($mode, ${secs}s)" ;;
    77)
      if grep -q 'KNOWN HOLE' "$log"; then
        why=$(grep -m1 'KNOWN HOLE' "$log" | cut -c1-200)
        echo "hole" >"$SHARED/res/$name.$mode.kind"
      else
        why=$(grep -v '^[[:space:]]*$' "$log" | tail -n1 | cut -c1-200)
      fi
      echo "ok $TAP_N - $name ($mode) # SKIP ${why:-skipped}" ;;
    124 | 137)
      FAILED=$((FAILED + 1))
      echo "not ok $TAP_N - $name ($mode): timed out after ${TIMEOUT}s"
      tail -n 40 "$log" | sed 's/^/# /' ;;
    *)
      FAILED=$((FAILED + 1))
      echo "not ok $TAP_N - $name ($mode): exit $rc, not contained (${secs}s)"
      tail -n 40 "$log" | sed 's/^/# /' ;;
  esac
}

# Run (case, mode) pairs, JOBS at a time; TAP lines in completion order.
declare -A pending=()
reap() {
  local key
  for key in "${!pending[@]}"; do
    if [ -f "$SHARED/res/$key.rc" ]; then
      wait "${pending[$key]}" 2>/dev/null
      unset "pending[$key]"
      report "${key%.*}" "${key##*.}"
    fi
  done
}
for name in "${cases[@]}"; do
  for mode in $modes; do
    while [ "${#pending[@]}" -ge "$JOBS" ]; do
      wait -n 2>/dev/null || true
      reap
      [ "${#pending[@]}" -ge "$JOBS" ] && sleep 0.1
    done
    run_one "$name" "$mode" &
    pending["$name.$mode"]=$!
  done
done
while [ "${#pending[@]}" -gt 0 ]; do
  wait -n 2>/dev/null || true
  reap
  [ "${#pending[@]}" -gt 0 ] && sleep 0.1
done
echo "1..$TAP_N"

# Summary over H-ids.
declare -A id_cases=() id_bad=() id_hole=()
extras=()
for name in "${cases[@]}"; do
  if [[ $name =~ ^h([0-9][0-9])_ ]]; then
    id=$((10#${BASH_REMATCH[1]}))
    id_cases[$id]=$(( ${id_cases[$id]:-0} + 1 ))
    passed_any=0
    for mode in $modes; do
      rc=$(cat "$SHARED/res/$name.$mode.rc" 2>/dev/null || echo 1)
      [ "$rc" = 0 ] && passed_any=1
      if [ -f "$SHARED/res/$name.$mode.kind" ]; then id_hole[$id]=1
      elif [ "$rc" != 0 ] && [ "$rc" != 77 ]; then id_bad[$id]=1; fi
    done
    [ "$passed_any" = 1 ] || id_bad[$id]=${id_bad[$id]:-skip}
  else
    extras+=("$name")
  fi
done
contained=() failing=() holes=() skipped=() missing=()
for id in $(seq 1 "$TOTAL_IDS"); do
  hid=$(printf 'H%02d' "$id")
  if [ -z "${id_cases[$id]:-}" ]; then missing+=("$hid")
  elif [ -n "${id_hole[$id]:-}" ]; then holes+=("$hid")
  elif [ "${id_bad[$id]:-}" = 1 ]; then failing+=("$hid")
  elif [ "${id_bad[$id]:-}" = skip ]; then skipped+=("$hid")
  else contained+=("$hid"); fi
done
join() { local IFS=,; echo "${*:-none}"; }
echo "# hostile inputs: ${#contained[@]}/$TOTAL_IDS contained (ids: $(join "${contained[@]}")) ; not covered: $(join "${missing[@]}")"
[ "${#failing[@]}" -gt 0 ] && echo "# hostile inputs failing: $(join "${failing[@]}")"
[ "${#holes[@]}" -gt 0 ] && echo "# known holes: $(join "${holes[@]}")"
[ "${#skipped[@]}" -gt 0 ] && echo "# skipped in every mode: $(join "${skipped[@]}")"
[ "${#extras[@]}" -gt 0 ] && echo "# extra cases (no H-id): $(join "${extras[@]}")"
if [ -n "${KILN_SECURITY_SUMMARY:-}" ]; then
  if [ -n "$FILTER" ]; then
    echo "hostile inputs: ${#contained[@]}/$TOTAL_IDS contained (filtered: $FILTER)" >"$KILN_SECURITY_SUMMARY"
  else
    echo "hostile inputs: ${#contained[@]}/$TOTAL_IDS contained" >"$KILN_SECURITY_SUMMARY"
  fi
fi
[ "$FAILED" -eq 0 ]
