#!/usr/bin/env bash
# H02: absolute names `/etc/passwd`, `//etc/x` are root-relative: they land in
# the image's /etc, never in the host's.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
tag=kiln-h02-$$-$RANDOM
mkpy "$WORK/l.tar" "$tag" <<'PY'
import sys, mkhostile as mk
t = mk.Tar().file("/etc/" + sys.argv[2], "abs\n").file("//etc/x-" + sys.argv[2], "dbl\n")
open(sys.argv[1], "wb").write(t.bytes())
PY
for via in import oci add; do
  accepted "$via" "$WORK/l.tar"
  in_image cat "/etc/$tag" "/etc/x-$tag"
  [ "$(cat "$WORK/out")" = "$(printf 'abs\ndbl')" ] || { show >&2; not_contained "$via: /etc/$tag not in the image"; }
done
[ ! -e "/etc/$tag" ] && [ ! -e "/etc/x-$tag" ] || { rm -f "/etc/$tag" "/etc/x-$tag"; not_contained "written to the host's /etc"; }
prune_check
