#!/usr/bin/env bash
# H36 (expansion bomb, issue [2.1]): a 60 KB Containerfile chaining
# `ARG A<n>=${A<n-1>}${A<n-1>}` took 5 GB in `kiln build --print-graph`.
# Contained: exit 2 naming the file:line where a word passes 1 MiB, and the
# peak RSS stays under 200 MiB.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
mkdir -p ctx
python3 "$KILN_SOURCE_ROOT/tests/security/mkhostile.py" arg-bomb "$WORK/Containerfile"
chmod -R a+rX "$WORK/Containerfile" ctx
as_mode "$MODE" env KILN_ROOT="$WORK/store" python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:], timeout=100)
open(sys.argv[1], "w").write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)' "$WORK/rss" "$KILN_BIN" build --print-graph -f "$WORK/Containerfile" "$WORK/ctx" >/dev/null 2>"$WORK/err"
rc=$?
rss=$(tail -1 "$WORK/rss")
if [ "$rc" -ne 2 ]; then cat "$WORK/err" >&2; echo "exit $rc, want 2 (peak RSS $rss KiB)" >&2; exit 1; fi
grep -q "Containerfile:19: .*larger than 1 MiB" "$WORK/err" ||
  { cat "$WORK/err" >&2; echo "the error does not name Containerfile:19 and the 1 MiB bound" >&2; exit 1; }
[ "$(grep -c . "$WORK/err")" -le 3 ] || { cat "$WORK/err" >&2; echo "error is more than one clear line" >&2; exit 1; }
[ "$rss" -lt 204800 ] || { echo "peak RSS $rss KiB (bound: 200 MiB)" >&2; exit 1; }
exit 0
