#!/usr/bin/env bash
# H09: whiteouts `.wh..`, `.wh...`, `etc/.wh..` are refused ("invalid
# whiteout"); `dne/../../.wh.etc` escapes; a whiteout of a symlink to the
# victim removes the link only; whiteouts and an opaque marker under a
# symlinked parent act inside the image's root, never on the victim.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK" "$VICTIM" <<'PY'
import sys, mkhostile as mk
work, victim = sys.argv[1:]
w = lambda name, t: open("%s/%s.tar" % (work, name), "wb").write(t.bytes())
w("dot", mk.Tar().whiteout(".wh.."))
w("dotdot", mk.Tar().whiteout(".wh..."))
w("etcdot", mk.Tar().whiteout("etc/.wh.."))
w("escape", mk.Tar().whiteout("dne/../../.wh.etc"))
# lower: links to the victim (absolute and relative) and in-root copies
w("lower", mk.Tar().symlink("lv", victim).symlink("lv2", "../../../victim")
  .file(victim + "/hello", "in-root copy\n").file(victim + "/other", "o\n")
  .dir("victim").file("victim/hello", "in-root\n"))
# upper: a whiteout of the link itself, whiteouts and an opaque marker under
# the symlinked parents
w("upper", mk.Tar().whiteout(".wh.lv").whiteout("lv2/.wh.hello").whiteout("lv2/.wh..wh..opq"))
PY
refused import "$WORK/dot.tar" 'invalid whiteout'
refused oci "$WORK/dotdot.tar" 'invalid whiteout'
refused add "$WORK/etcdot.tar" 'invalid whiteout'
refused import "$WORK/escape.tar" 'escapes root'
# Each layer is unpacked on its own (overlay form), so `lv2/` in the upper
# layer is a directory of that layer (as with Docker's overlay2): the lower
# link is hidden, its target in the image is not touched. Whiteout of a link
# removes the link only.
for via in oci archive; do
  accepted "$via" "$WORK/lower.tar,$WORK/upper.tar"
  in_image_prints "$(printf 'in-root copy\nin-root\nend')" "$via: the whiteouts did not act as expected" \
    sh -c "[ -e /lv ] || [ -L /lv ] && echo lv-still-there; cat '$VICTIM/hello' /victim/hello; echo end"
  check_victim
done
prune_check
