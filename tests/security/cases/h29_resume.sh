#!/usr/bin/env bash
# H29: a blob download that breaks off half-way, then a Range retry answered
# with 206 at the right offset (resume), 200 (Range ignored) or 206 from the
# wrong offset: every pull ends with the right content (kiln restarts from
# zero unless the 206 starts exactly where it stopped) and a verified digest.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, os, mkhostile as mk
work = sys.argv[1]
for b in ("reset-206", "reset-200", "reset-badrange"):  # fresh blobs for each: none is in the store yet
    data = os.urandom(1 << 20)
    open("%s/%s.sha" % (work, b), "w").write(mk.sha256(data)[7:])
    mk.image("oci", work + "/busybox.tar", [mk.Tar().file("a", data).bytes()], "%s/%s" % (work, b), ref="x:1")
PY
for b in reset-206 reset-200 reset-badrange; do
  want=$(cat "$WORK/$b.sha")
  start_hostile "$b" "$WORK/$b"
  run_k pull -q "$HREG/h29/$b:1"
  [ "$RC" -eq 0 ] || { show >&2; cat "$WORK/server.log" >&2; not_contained "$b: the pull failed"; }
  expect_ok run --rm --network none "$HREG/h29/$b:1" sha256sum /a
  [ "$(cut -c1-64 "$WORK/out")" = "$want" ] || { show >&2; not_contained "$b: the layer's content is wrong"; }
  [ "$(grep -c "^GET /v2/h29/$b/blobs/" "$WORK/server.log")" -ge 3 ] || { cat "$WORK/server.log" >&2; not_contained "$b: no retry seen (the test is broken)"; }
  kill "$HPID"; wait "$HPID" 2>/dev/null
  : >"$WORK/server.log"
done
no_staging_left
prune_check
