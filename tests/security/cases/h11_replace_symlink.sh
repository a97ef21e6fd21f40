#!/usr/bin/env bash
# H11: a layer replaces the lower layer's symlink `bin/sh -> busybox` by a
# regular file, and a symlink `bin/myapp -> VICTIM/dir` by a directory with a
# file: the links are replaced, nothing is written through them (busybox and
# the victim unchanged, no `x -> x` loop).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK" "$VICTIM" <<'PY'
import sys, mkhostile as mk
work, victim = sys.argv[1:]
open(work + "/lower.tar", "wb").write(mk.Tar().symlink("bin/myapp", victim + "/dir").symlink("bin/rel", "../../../victim").bytes())
open(work + "/upper.tar", "wb").write(mk.Tar().file("bin/sh", "#!/bin/busybox echo\n", mode=0o755)
     .dir("bin/myapp").file("bin/myapp/x", "x\n").dir("bin/rel").file("bin/rel/y", "y\n").bytes())
PY
want=$(tar -xOf "$WORK/busybox.tar" ./bin/busybox | sha256sum | cut -c1-64)
for via in import oci add; do
  accepted "$via" "$WORK/lower.tar,$WORK/upper.tar"
  in_image /bin/busybox sh -c 'cat /bin/sh; [ -L /bin/sh ] && echo link; [ -d /bin/myapp ] && [ ! -L /bin/myapp ] && cat /bin/myapp/x /bin/rel/y; /bin/busybox sha256sum /bin/busybox'
  got=$(cat "$WORK/out")
  [ "$got" = "$(printf '#!/bin/busybox echo\nx\ny\n%s  /bin/busybox' "$want")" ] ||
    { show >&2; echo "want busybox $want" >&2; not_contained "$via: links not replaced as expected"; }
  check_victim
done
prune_check
