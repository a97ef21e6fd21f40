#!/usr/bin/env bash
# H14: pathological names: a 5000-byte path, a 300-byte component, 10,000
# levels of nesting are refused with a bounded error (no crash, no stack
# overflow); a NUL inside a PAX path never writes outside; non-UTF-8 names are
# kept as bytes. (Names that differ only in Unicode normalization:
# h14_unicode_normalization.sh.)
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
w = lambda name, t: open("%s/%s.tar" % (work, name), "wb").write(t.bytes() if hasattr(t, "bytes") else t)
w("long", mk.Tar().file("a" * 5000, "x"))
w("comp", mk.Tar().file("b" * 300, "x"))
w("deep", mk.Tar().file("d/" * 10000 + "f", "x"))
pax = mk.pax_record("path", b"a\0/../../../../victim/hello")
w("nul", mk.raw_header("PaxHeaders/x", b"x", size=len(pax)) + mk.pad512(pax)
  + mk.raw_header("placeholder", b"0") + b"\0" * 1024)
w("utf", mk.Tar().file("bad-\udcff\udcfe-name", "x\n").file("caf\u00e9", "y\n"))
PY
refused import "$WORK/long.tar" 'path|name|long'
refused oci "$WORK/comp.tar" 'longer than 255|name|long'
refused import "$WORK/deep.tar" 'longer than|deeper|depth|long'
refused add "$WORK/deep.tar" 'longer than|deeper|depth|long'
deliver import "$WORK/nul.tar"
case $RC in 0 | 1 | 2 | 125) ;; *) show >&2; not_contained "NUL in a PAX path: exit $RC" ;; esac
check_victim
for via in import oci; do
  accepted "$via" "$WORK/utf.tar"
  # (the names are globbed inside: kiln run's own argv is not what this tests)
  in_image sh -c 'cat /bad-*-name; for f in /caf*; do cat "$f"; done'
  [ "$(sort "$WORK/out" | tr -d '\n')" = xy ] || { show >&2; not_contained "$via: non-UTF-8 names not kept as bytes"; }
done
prune_check
