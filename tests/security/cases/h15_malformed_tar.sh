#!/usr/bin/env bash
# H15: malformed tars: bad checksum, negative size, truncated data, not a tar,
# a PAX header over 1 MiB are refused (bounded, no crash); bytes after the
# end-of-archive blocks are accepted and counted in the digests (the image's
# diff_id is the sha256 of every byte); the same path twice: last wins.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
def w(name, data):
    open("%s/%s.tar" % (work, name), "wb").write(data)
w("badsum", mk.raw_header("x", break_checksum=True) + b"\0" * 1024)
w("negsize", mk.raw_header("neg", size_field="-0000000001") + b"\0" * 1024)
big = mk.Tar().file("big", b"z" * 100000).bytes()
w("trunc", big[:20000])
w("notatar", b"Q" * 4096)
huge = mk.pax_record("comment", "c" * (3 << 20))
w("paxbomb", mk.raw_header("PaxHeaders/big", b"x", size=len(huge)) + mk.pad512(huge)
  + mk.raw_header("after") + b"\0" * 1024)
w("trailing", mk.Tar().file("a", "aaaa\n").bytes() + b"GARBAGE-TRAILER")
w("dup", mk.Tar().file("dup", "first\n").file("dup", "second\n").bytes())
PY
refused import "$WORK/badsum.tar" 'checksum|header|tar|archive'
refused oci "$WORK/negsize.tar" 'size|header|tar|archive'
refused import "$WORK/trunc.tar" 'truncat|unexpected end|short|tar|archive'
refused archive "$WORK/notatar.tar" 'tar|archive|format'
refused import "$WORK/paxbomb.tar" 'pax|header|large|limit'
refused add "$WORK/paxbomb.tar" 'pax|header|large|limit'
# trailing bytes: import keeps the tarball's bytes; the diff_id covers them
mkpy "$WORK/trail-only.tar" <<'PY'
import sys, mkhostile as mk
open(sys.argv[1], "wb").write(mk.Tar().file("a", "aaaa\n").bytes() + b"GARBAGE-TRAILER")
PY
own "$WORK/trail-only.tar"
expect_ok import "$WORK/trail-only.tar" localhost/trailing
expect_ok inspect --format '{{json .RootFS}}' localhost/trailing
want=sha256:$(sha256sum <"$WORK/trail-only.tar" | cut -c1-64)
grep -q "$want" "$WORK/out" || { show >&2; not_contained "the diff_id does not cover the trailing bytes ($want)"; }
for via in oci add; do
  accepted "$via" "$WORK/trailing.tar"
  accepted "$via" "$WORK/dup.tar"
  in_image cat /dup
  [ "$(cat "$WORK/out")" = second ] || { show >&2; not_contained "$via: same path twice: the last did not win"; }
done
prune_check
