#!/usr/bin/env bash
# H13: ownership and mode edge cases. setuid/setgid/sticky bits of root-owned
# entries round-trip into the image; uid 2147483648 is kept as root and
# refused rootless (outside the subordinate range, naming /etc/subuid and the
# id); uid 4294967295 (chown's "unchanged") and ids beyond the mapped range
# are refused naming the id; a negative octal field is a malformed header.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
w = lambda name, t: open("%s/%s.tar" % (work, name), "wb").write(t.bytes())
w("modes", mk.Tar().file("suid", "x", mode=0o4755).file("sgid", "x", mode=0o2755, gid=50)
  .dir("sticky", mode=0o1777).file("app", "x", uid=1000, gid=1000))
w("bigid", mk.Tar().file("bigid", "x", uid=2147483648, gid=2147483648))
w("minus1", mk.Tar().file("minus1", "x", uid=4294967295))
w("beyond", mk.Tar().file("beyond", "x", uid=70000, gid=70000))
neg = mk.raw_header("neg", uid=0)
neg = neg[:108] + b"-000001\0" + neg[116:]
import hashlib
h = bytearray(neg); h[148:156] = b" " * 8; h[148:156] = ("%06o" % sum(h)).encode() + b"\0 "
w("neguid", mk.Tar().raw(bytes(h)))
PY
for via in import oci add; do
  accepted "$via" "$WORK/modes.tar"
  in_image stat -c '%n %a %u %g' /suid /sgid /sticky /app
  want=$(printf '/suid 4755 0 0\n/sgid 2755 0 50\n/sticky 1777 0 0\n/app 644 1000 1000')
  [ "$(cat "$WORK/out")" = "$want" ] || { show >&2; not_contained "$via: modes or owners did not round-trip"; }
done
# The host copy of the setuid file belongs to the image's root (real root, or
# the mode user's subordinate uid): never to another host user.
refused import "$WORK/minus1.tar" '4294967295'
if [ "$MODE" = user ]; then
  refused import "$WORK/bigid.tar" '/etc/sub[ug]id.*2147483648|2147483648.*/etc/sub[ug]id'
  refused oci "$WORK/beyond.tar" '/etc/sub[ug]id.*70000|70000.*/etc/sub[ug]id'
else
  accepted oci "$WORK/bigid.tar"
  in_image stat -c '%u %g' /bigid
  [ "$(cat "$WORK/out")" = "2147483648 2147483648" ] || { show >&2; not_contained "uid 2147483648 not kept"; }
fi
refused import "$WORK/neguid.tar" 'neg|header|tar|uid'
prune_check
