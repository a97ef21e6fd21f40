#!/usr/bin/env bash
# H38 through the CLI (CVE-2024-21626): `WORKDIR /proc/self/fd/7` in a build
# and `kiln run -w /proc/self/fd/N`, plus `run -u` outside the mapping and
# `-u 4294967295`. Contained: refused with one line naming the value and
# why; no process runs with a cwd outside the rootfs. Usage: bash FILE MODE WORKDIR.
set -u
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
need_busybox skip
fail() { echo "not contained: $*" >&2; exit 1; }
mkdir -p "$WORK/ctx"
[ "$MODE" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$WORK/ctx"

for fd in 3 4 5 7 9; do
  out=$(k run --rm --network none -w "/proc/self/fd/$fd" busybox ls ../../.. 2>"$WORK/err"); rc=$?
  [ "$rc" -eq 125 ] && [ -z "$out" ] && grep -q "working directory /proc/self/fd/$fd" "$WORK/err" &&
    [ "$(grep -c . "$WORK/err")" -eq 1 ] || fail "run -w /proc/self/fd/$fd: rc $rc, out '$out', message: $(cat "$WORK/err")"
done
printf 'FROM busybox\nWORKDIR /proc/self/fd/7\nRUN ls ../../..\n' >"$WORK/ctx/Containerfile"
k build -t wd "$WORK/ctx" >"$WORK/out" 2>&1; rc=$?
[ "$rc" -ne 0 ] && grep -q 'working directory /proc/self/fd/7' "$WORK/out" ||
  fail "build WORKDIR /proc/self/fd/7: rc $rc: $(tail -3 "$WORK/out")"
k run --rm --network none -u 4294967295 busybox id -u >/dev/null 2>"$WORK/err"; rc=$?
[ "$rc" -eq 2 ] && grep -q 'out of range' "$WORK/err" || fail "run -u 4294967295: rc $rc: $(cat "$WORK/err")"
if [ "$MODE" = user ]; then
  k run --rm --network none -u 65537 busybox id -u >/dev/null 2>"$WORK/err"; rc=$?
  [ "$rc" -eq 2 ] && grep -q 'uid 65537 is not mapped' "$WORK/err" || fail "run -u 65537: rc $rc: $(cat "$WORK/err")"
fi
exit 0
