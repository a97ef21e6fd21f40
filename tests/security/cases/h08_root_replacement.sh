#!/usr/bin/env bash
# H08: entries that would replace the root (a symlink named `.`, `./`, `/`,
# `//`, `localetc/sub/..`; a hardlink named `./`; a symlink named `..`) are
# refused; the layer after them is never written through to the link target.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
n=0
for name in '.' './' '/' '//' 'localetc/sub/..' '..'; do
  n=$((n + 1))
  mkpy "$WORK/l$n.tar" "$name" "$VICTIM/dir" <<'PY'
import sys, mkhostile as mk
open(sys.argv[1], "wb").write(mk.Tar().symlink(sys.argv[2], sys.argv[3]).bytes())
PY
done
mkpy "$WORK/second.tar" <<'PY'
import sys, mkhostile as mk
open(sys.argv[1], "wb").write(mk.Tar().file("second", "2\n").file("dir/second", "2\n").bytes())
PY
mkpy "$WORK/hl.tar" <<'PY'
import sys, mkhostile as mk
open(sys.argv[1], "wb").write(mk.Tar().file("x", "x").hardlink("./", "x").bytes())
PY
for i in 2 4 5 6; do
  refused oci "$WORK/l$i.tar" 'replace the root|escapes root'
done
refused import "$WORK/l1.tar,$WORK/second.tar" 'replace the root|escapes root'
refused archive "$WORK/l3.tar,$WORK/second.tar" 'replace the root|escapes root'
refused add "$WORK/l2.tar,$WORK/second.tar" 'replace the root|escapes root'
refused import "$WORK/hl.tar" 'replace the root|escapes root'
[ ! -e "$VICTIM/dir/second" ] && [ ! -e "$VICTIM/second" ] || not_contained "the second layer was written through to the victim"
exit 0
