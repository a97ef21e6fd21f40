#!/usr/bin/env bash
# Issue [2.1] item 4: a registry host that does not resolve got the hint
# "plain HTTP needs --tls-verify=false". The hint only where it applies.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
kiln_as "$MODE" "$WORK/store" pull nosuch.invalid/x:1 >/dev/null 2>err
rc=$?
[ $rc -ne 0 ] || { echo "pull from nosuch.invalid succeeded?" >&2; exit 1; }
grep -qi resolve err || { cat err >&2; echo "the error does not say the name does not resolve" >&2; exit 1; }
if grep -q "plain HTTP" err; then cat err >&2; echo "misleading plain-HTTP hint" >&2; exit 1; fi
exit 0
