#!/usr/bin/env bash
# H10: deferred metadata after a type flip: `d/` (mode 0777, old mtime), then
# `d -> VICTIM/dir`; a symlink entry with mode 0777 and an xattr pointing at
# the victim file; a hardlink to such a symlink with mode 07777. The victim's
# modes, times and xattrs are unchanged.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK/l.tar" "$VICTIM" <<'PY'
import sys, mkhostile as mk
out, victim = sys.argv[1:]
t = (mk.Tar().dir("d", mode=0o777, mtime=12345).symlink("d", victim + "/dir")
     .symlink("s", victim + "/hello", mode=0o777, xattrs={"user.evil": "1"})
     .symlink("l", victim + "/dir/secret").hardlink("h", "l", mode=0o7777)
     .dir("e", mode=0o777, mtime=1).symlink("e", "../../../victim"))
open(out, "wb").write(t.bytes())
PY
for via in import oci archive add; do
  deliver "$via" "$WORK/l.tar"
  [ "$RC" -ne 99 ] || { cat "$WORK/err" >&2; exit 1; }
  case $RC in 0 | 1 | 2 | 125) ;; *) show >&2; not_contained "$via: exit $RC" ;; esac
  check_victim
  if command -v getfattr >/dev/null && getfattr -d "$VICTIM/hello" 2>/dev/null | grep -q evil; then
    not_contained "$via: xattr written to the victim"
  fi
  python3 -c 'import os,sys; sys.exit(1 if "user.evil" in os.listxattr(sys.argv[1]) else 0)' "$VICTIM/hello" ||
    not_contained "$via: xattr user.evil written to the victim"
done
prune_check
