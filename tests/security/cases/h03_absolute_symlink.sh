#!/usr/bin/env bash
# H03: `localetc -> /etc` then `localetc/unbroken`; a link to the victim dir
# by its absolute host path, then a file through it; a chain of links. Every
# write is resolved inside the image's root: the host /etc and the victim
# stay as they were, the files are in the image.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
tag=kiln-h03-$$-$RANDOM
mkpy "$WORK/l.tar" "$tag" "$VICTIM" <<'PY'
import sys, mkhostile as mk
out, tag, victim = sys.argv[1:]
t = (mk.Tar().symlink("localetc", "/etc").file("localetc/" + tag, "unbroken\n")
     .symlink("localvictim", victim).file("localvictim/hello", "overwritten?\n")
     .symlink("chain1", "chain2").symlink("chain2", "/dummy/../chain3").file("chain1/f", "f\n")
     .symlink("up", "./dummy/../../../../..").file("up/" + tag + "-up", "up\n"))
open(out, "wb").write(t.bytes())
PY
for via in import oci add; do
  accepted "$via" "$WORK/l.tar"
  in_image cat "/etc/$tag" "$VICTIM/hello" /chain3/f "/$tag-up"
  [ "$(cat "$WORK/out")" = "$(printf 'unbroken\noverwritten?\nf\nup')" ] ||
    { show >&2; not_contained "$via: the files are not where the image's root puts them"; }
  check_victim
done
for p in "/etc/$tag" "/$tag-up" "/chain3"; do
  [ ! -e "$p" ] || { rm -rf "$p"; not_contained "written to the host: $p"; }
done
prune_check
