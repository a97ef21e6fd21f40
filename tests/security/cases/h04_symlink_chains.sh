#!/usr/bin/env bash
# H04: relative symlink chains that climb out: `inner/go_up -> ..`,
# `inner/go_up/escape -> ../victim`, `inner/go_up/escape/newfile`, at every
# depth from the layer directory to the victim beside the store; and
# `escape -> ..` + `escape/absolute -> VICTIM` + `escape/absolute/file`.
# `..` stops at the image's root: nothing reaches the victim.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK/l.tar" "$VICTIM" <<'PY'
import sys, mkhostile as mk
out, victim = sys.argv[1:]
t = mk.Tar().dir("inner").symlink("inner/go_up", "..")
for depth in range(1, 8):
    up = "../" * depth
    t.symlink("inner/go_up/escape%d" % depth, up + "victim")
    t.file("inner/go_up/escape%d/newfile%d" % (depth, depth), "x\n")
t.symlink("escape2", "..").symlink("escape2/absolute", victim).file("escape2/absolute/file", "y\n")
open(out, "wb").write(t.bytes())
PY
for via in import oci add; do
  accepted "$via" "$WORK/l.tar"
  in_image sh -c "cat /victim/newfile1 /victim/newfile7 '$VICTIM/file'"
  [ "$(cat "$WORK/out")" = "$(printf 'x\nx\ny')" ] || { show >&2; not_contained "$via: not clamped at the image root"; }
  check_victim
done
prune_check
