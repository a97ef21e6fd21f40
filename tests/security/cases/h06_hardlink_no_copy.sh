#!/usr/bin/env bash
# H06: a hardlink that cannot be made is an error, never a copy: a hardlink
# to a directory is refused ("is a directory"); a hardlink to a symlink that
# points at a host file links the symlink itself.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK" "$VICTIM" <<'PY'
import sys, mkhostile as mk
work, victim = sys.argv[1:]
open(work + "/dir.tar", "wb").write(mk.Tar().dir("d").file("d/f", "x").hardlink("e", "d").bytes())
open(work + "/sym.tar", "wb").write(mk.Tar().symlink("l", victim + "/hello").hardlink("h", "l").bytes())
PY
refused import "$WORK/dir.tar" 'is a directory|hard ?link'
refused add "$WORK/dir.tar" 'is a directory|hard ?link'
for via in oci add; do
  accepted "$via" "$WORK/sym.tar"
  in_image_prints "$VICTIM/hello" "$via: /h is not the symlink" \
    sh -c 'if [ -L /h ]; then readlink /h; else echo "not a link"; fi'
  check_victim
done
prune_check
