#!/usr/bin/env bash
# H17: metadata for the rootfs itself (`./` mode 0000, `.` mode 0777, odd
# mtime) leaves the root traversable (an unprivileged user in the container
# can still list /); a whiteout keeps its parent directory's mtime.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
w = lambda name, t: open("%s/%s.tar" % (work, name), "wb").write(t.bytes())
w("root", mk.Tar().dir("./", mode=0, mtime=1).dir(".", mode=0o777).file("marker", "m\n"))
w("d", mk.Tar().dir("d", mode=0o755, mtime=1234).file("d/gone", "x").file("d/stays", "y"))
w("wh", mk.Tar().dir("d", mode=0o755, mtime=1234).whiteout("d/.wh.gone"))
w("whnodir", mk.Tar().whiteout("d/.wh.gone"))
PY
for via in import oci add; do
  accepted "$via" "$WORK/root.tar"
  in_image stat -c %a /
  mode=$(cat "$WORK/out")
  case $mode in 0 | 777) show >&2; not_contained "$via: the root took mode $mode from the layer" ;; esac
  run_k run --rm --network none -u 65534:65534 "$IMG" sh -c 'ls / >/dev/null && cat /marker'
  [ "$RC" -eq 0 ] && [ "$(cat "$WORK/out")" = m ] || { show >&2; not_contained "$via: the root is not traversable for uid 65534"; }
done
for via in oci add; do
  accepted "$via" "$WORK/d.tar,$WORK/wh.tar"
  in_image_prints "$(printf '1234\nstays')" "$via: the whiteout changed its parent's mtime or did not apply" \
    sh -c 'stat -c %Y /d; ls /d'
done
prune_check
