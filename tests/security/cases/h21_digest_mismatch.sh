#!/usr/bin/env bash
# H21: a blob whose bytes do not hash to its name (one flipped byte in a
# layer; the layer re-gzipped at -3 under the old name; a flipped byte in the
# config) is refused by pull oci:, pull oci-archive: and load with "digest
# mismatch" (or "size mismatch") naming the digest; the image is not
# created and nothing of it is stored.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, os, json, mkhostile as mk
work = sys.argv[1]
def corrupt(name, what):
    # a layer (and so a config) of its own per image: a blob already in the
    # store from an earlier pull is rightly not read again
    tar = mk.Tar().file("a", name.encode() * 1000).bytes()
    d = "%s/%s" % (work, name)
    parts = mk.image("oci", work + "/busybox.tar", [tar], d, ref="localhost/h21-%s:1" % name)
    if what == "flip":
        digest = parts["layers"][1]["digest"]
        p = "%s/blobs/sha256/%s" % (d, digest[7:])
        b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0xFF; open(p, "wb").write(bytes(b))
    elif what == "regzip":
        digest = parts["layers"][1]["digest"]
        p = "%s/blobs/sha256/%s" % (d, digest[7:])
        open(p, "wb").write(mk.gz(tar, level=3) + b"\0" * 0)
    elif what == "config":
        digest = parts["manifest"]["config"]["digest"]
        p = "%s/blobs/sha256/%s" % (d, digest[7:])
        b = bytearray(open(p, "rb").read()); b[-2] = ord("X"); open(p, "wb").write(bytes(b))
    open(d + ".digest", "w").write(digest)
    mk.archive(d, d + ".tar")
for n, w in (("flip", "flip"), ("regzip", "regzip"), ("config", "config")):
    corrupt(n, w)
PY
own "$WORK"
for name in flip regzip config; do
  d=$(cat "$WORK/$name.digest")
  for how in "pull oci:$WORK/$name" "pull oci-archive:$WORK/$name.tar" "load -i $WORK/$name.tar"; do
    # shellcheck disable=SC2086
    run_k $how
    if [ "$RC" -eq 0 ]; then
      run_k run --rm --network none "localhost/h21-$name:1" true
      [ "$RC" -ne 0 ] || { show >&2; not_contained "$how: a corrupt blob was accepted and runs"; }
      show >&2; not_contained "$how: the corrupt image was stored (it fails only at run)"
    fi
    case $RC in 1 | 2) ;; *) show >&2; not_contained "$how: exit $RC" ;; esac
    grep -Eq "(digest|size) mismatch" "$WORK/err" || { show >&2; not_contained "$how: no \"digest mismatch\""; }
    grep -q "${d:7:12}" "$WORK/err" || { show >&2; not_contained "$how: the error does not name $d"; }
    expect_short_error 4
    [ ! -e "$STORE/blobs/sha256/${d#sha256:}" ] || not_contained "$how: the corrupt blob $d is in the store"
    run_k images --format '{{.Names}}'
    ! grep -q "h21-$name" "$WORK/out" || { show >&2; not_contained "$how: the image is listed"; }
    no_staging_left
    prune_check
  done
done
