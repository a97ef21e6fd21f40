#!/usr/bin/env bash
# H05: hardlinks out of the root (`../victim/hello` at every depth,
# `/../victim/hello`, through a symlinked dir, through an absolute link to
# the victim) are refused naming the entry; no inode is shared with a host
# file (the victim's link count is unchanged).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK" "$VICTIM" <<'PY'
import sys, mkhostile as mk
work, victim = sys.argv[1:]
cases = {
    "rel": mk.Tar().file("ok", "x").hardlink("grab", "../../../victim/hello"),
    "abs": mk.Tar().hardlink("grab", "/../victim/hello"),
    "loophole": mk.Tar().symlink("loophole", "../../../victim").hardlink("grab", "loophole/hello"),
    "abslink": mk.Tar().symlink("loophole2", victim).hardlink("grab2", "loophole2/hello"),
    "symdir": mk.Tar().dir("breakouts").symlink("breakouts/d1", "../../etc").hardlink("breakouts/passwd", "breakouts/d1/passwd"),
}
for name, t in cases.items():
    open("%s/%s.tar" % (work, name), "wb").write(t.bytes())
PY
refused import "$WORK/rel.tar" 'path escapes root|not found in the layer root'
grep -q 'grab' "$WORK/err" || { show >&2; not_contained "the error does not name the entry"; }
refused oci "$WORK/abs.tar" 'path escapes root|not found in the layer root'
refused import "$WORK/loophole.tar" 'not found in the layer root|path escapes root'
refused archive "$WORK/abslink.tar" 'not found in the layer root|path escapes root'
refused add "$WORK/rel.tar" 'path escapes root|not found in the layer root'
# (by pull oci:, so that /etc/passwd is in a lower layer, outside this layer's root)
refused oci "$WORK/symdir.tar" 'not found in the layer root|path escapes root'
exit 0
