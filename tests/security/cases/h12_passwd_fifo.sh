#!/usr/bin/env bash
# H12 through the CLI: an image whose /etc/passwd (or /etc/group) is a FIFO.
# Contained: `kiln run` ends at once with 2 (invalid image) and one line naming the file,
# and a concurrent run on the same store is not held up (no store lock is
# held while the image's files are read). Usage: bash FILE MODE WORKDIR.
set -u
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "skip: cannot make or import the busybox image" >&2; exit 77; }
python3 "$KILN_SOURCE_ROOT/tests/run/tarmod.py" "$WORK/busybox.tar" "$WORK/fifo.tar" --fifo etc/passwd &&
  python3 "$KILN_SOURCE_ROOT/tests/run/tarmod.py" "$WORK/busybox.tar" "$WORK/gfifo.tar" --fifo etc/group ||
  { echo "skip: cannot make the FIFO tars" >&2; exit 77; }
chmod 644 "$WORK/fifo.tar" "$WORK/gfifo.tar"
kiln_as "$MODE" "$store" import "$WORK/fifo.tar" fifo >/dev/null 2>&1 &&
  kiln_as "$MODE" "$store" import "$WORK/gfifo.tar" gfifo >/dev/null 2>&1 ||
  { echo "not contained: kiln import of the FIFO image failed" >&2; exit 1; }
run_t() { timeout 30 bash -c "$(declare -f kiln_as as_mode); kiln_as $MODE $store $*"; }

run_t run --rm fifo id >/dev/null 2>"$WORK/err"; rc=$?
[ "$rc" -eq 124 ] && { echo "not contained: run of the FIFO /etc/passwd image hangs" >&2; exit 1; }
if [ "$rc" -ne 2 ] || ! grep -q '/etc/passwd is a fifo' "$WORK/err"; then
  echo "not contained: rc $rc, no clear error: $(head -c 300 "$WORK/err")" >&2; exit 1
fi
run_t run --rm -u 0:0 gfifo id >/dev/null 2>"$WORK/err"; rc=$?
if [ "$rc" -ne 2 ] || ! grep -q '/etc/group is a fifo' "$WORK/err"; then
  echo "not contained: FIFO /etc/group: rc $rc: $(head -c 300 "$WORK/err")" >&2; exit 1
fi
run_t run --rm fifo id >/dev/null 2>&1 &
bg=$!
out=$(run_t run --rm --network none busybox echo alongside 2>&1); rc=$?
wait "$bg"; bgrc=$?
if [ "$rc" -ne 0 ] || [ "$out" != alongside ] || [ "$bgrc" -eq 124 ]; then
  echo "not contained: a run beside the FIFO image: rc $rc ($out), FIFO run rc $bgrc" >&2; exit 1
fi
if [ -n "$(kiln_as "$MODE" "$store" ps -a -q 2>&1)" ]; then
  echo "not contained: a container record is left behind" >&2; exit 1
fi
exit 0
