#!/usr/bin/env bash
# H34: a registry that sends a blob's headers and then nothing: the idle
# timeout (less than 1 byte/s for 60 s) fires and the download is retried;
# interrupting the pull then leaves no partial blob. Takes ~75 s: runs only
# with KILN_SECURITY_LONG=1.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
[ "${KILN_SECURITY_LONG:-}" = 1 ] || skip "slow (75 s): set KILN_SECURITY_LONG=1"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
mk.image("oci", work + "/busybox.tar", [mk.Tar().file("a", "x").bytes()], work + "/a", ref="x:1")
PY
start_hostile stall "$WORK/a"
as_mode "$MODE" env KILN_ROOT="$STORE" "$KILN_BIN" pull "$HREG/h34/img:1" >"$WORK/out" 2>"$WORK/err" &
pid=$!
seen=0
for _ in $(seq 80); do
  sleep 1
  n=$(grep -c '^GET /v2/h34/img/blobs/' "$WORK/server.log")
  # two layers start at once; a third GET of a layer is a retry
  if [ "$n" -ge 3 ]; then seen=1; break; fi
done
kill -INT "$pid" 2>/dev/null; sleep 2; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
[ "$seen" = 1 ] || { cat "$WORK/server.log" "$WORK/err" >&2; not_contained "no retry within 80 s: the idle timeout did not fire"; }
run_k images --format '{{.Names}}'
! grep -q h34 "$WORK/out" || not_contained "the image is listed"
run_k prune -f
no_staging_left
prune_check
