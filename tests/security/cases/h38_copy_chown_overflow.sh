#!/usr/bin/env bash
# H38 (strict ids in a build, issue [2.1]): `COPY --chown=4294967295:0` gave
# a root-owned file (chown reads -1 as "unchanged"). Refused with exit 2
# naming the file:line and the value, for the uid and the gid, and for
# `USER 4294967295` before a RUN; rootless, an id outside the user namespace
# is refused by name too. The store stays consistent.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "cannot import the busybox base" >&2; exit 1; }
mkdir -p ctx && echo a >ctx/a.txt && chmod -R a+rX ctx
check() {  # check NAME NEEDLE: Containerfile NAME must fail with exit 2 and say NEEDLE
  kiln_as "$MODE" "$store" build -q -f "$1" ctx >/dev/null 2>"$1.err"
  local rc=$?
  if [ $rc -ne 2 ] || ! grep -qF -- "$2" "$1.err"; then
    cat "$1.err" >&2; echo "$1: exit $rc, want 2 and: $2" >&2; exit 1
  fi
}
printf 'FROM busybox\nCOPY --chown=4294967295:0 a.txt /a\n' >uid; chmod 644 uid
check uid "uid:2: --chown=4294967295:0: "
printf 'FROM busybox\nCOPY --chown=0:4294967295 a.txt /a\n' >gid; chmod 644 gid
check gid "gid:2: --chown=0:4294967295: "
printf 'FROM busybox\nUSER 4294967295\nRUN true\n' >user; chmod 644 user
check user "user:3: USER 4294967295: "
if [ "$MODE" = user ]; then
  printf 'FROM busybox\nCOPY --chown=70000 a.txt /a\n' >unmapped; chmod 644 unmapped
  check unmapped "unmapped:2: --chown=70000: uid 70000 is not mapped"
fi
kiln_as "$MODE" "$store" prune --check >/dev/null 2>&1 || { echo "prune --check fails" >&2; exit 1; }
exit 0
