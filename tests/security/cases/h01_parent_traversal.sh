#!/usr/bin/env bash
# H01: entries `../evil`, `/../evil`, `../../pwned`, `..`, `a/../../b` are
# refused ("path escapes root", naming the entry) by every path a layer takes
# into the store; nothing lands beside the rootfs.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
n=0
for name in '../evil' '/../evil' '../../pwned' '..' 'a/../../b' './../victim/hello'; do
  n=$((n + 1))
  mkpy "$WORK/l$n.tar" "$name" <<'PY'
import sys, mkhostile as mk
open(sys.argv[1], "wb").write(mk.Tar().file("ok", "fine").file(sys.argv[2], "pwned").bytes())
PY
  # the entry's name (regex-quoted) must be in the message
  q=$(printf '%s' "$name" | sed 's/[.[\*^$/]/\\&/g')
  refused oci "$WORK/l$n.tar" "path escapes root.*$q|$q.*path escapes root"
done
for via in import archive add; do
  refused "$via" "$WORK/l1.tar" 'path escapes root.*\.\./evil|\.\./evil.*path escapes root'
done
found=$(find "$WORK" -path "$WORK/l*.tar" -prune -o \( -name evil -o -name pwned -o -name b \) -print | head -3)
[ -z "$found" ] || not_contained "escaped entries written: $found"
exit 0
