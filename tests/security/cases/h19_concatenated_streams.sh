#!/usr/bin/env bash
# H19: a layer stored as two gzip members, gzip followed by NUL padding
# (umoci #360), multi-frame zstd with a skippable frame: accepted, the image
# has the right content, and the stored blob is the exact bytes (its digest
# covers every byte). gzip followed by garbage is refused.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
command -v zstd >/dev/null || skip "needs the zstd command to make multi-frame zstd"
mkpy "$WORK" <<'PY'
import sys, subprocess, mkhostile as mk
work = sys.argv[1]
tar = mk.Tar().file("a", b"a" * 5000 + b"\n").bytes()
zstd = lambda d: subprocess.run(["zstd", "-q", "-c"], input=d, stdout=subprocess.PIPE, check=True).stdout
skippable = b"\x50\x2a\x4d\x18\x04\x00\x00\x00abcd"
forms = {
    "members": (mk.gz(tar[:1024]) + mk.gz(tar[1024:]), mk.MT_LAYER_GZ),
    "padded": (mk.gz(tar) + b"\0" * 4096, mk.MT_LAYER_GZ),
    "zstdframes": (zstd(tar[:700]) + skippable + zstd(tar[700:]), "application/vnd.oci.image.layer.v1.tar+zstd"),
    "garbage": (mk.gz(tar) + b"\0\0junk", mk.MT_LAYER_GZ),
}
for name, (blob, mt) in forms.items():
    mk.image("oci", work + "/busybox.tar", [tar], "%s/%s" % (work, name), ref="localhost/h19-" + name + ":1",
             blobs=[blob], media_types=[mt])
    mk.archive("%s/%s" % (work, name), "%s/%s.tar" % (work, name))
    open("%s/%s.digest" % (work, name), "w").write(mk.sha256(blob))
PY
own "$WORK"
for name in members padded zstdframes; do
  for src in "oci:$WORK/$name" "oci-archive:$WORK/$name.tar"; do
    expect_ok pull "$src"
    expect_ok run --rm --network none "localhost/h19-$name:1" sh -c 'wc -c </a'
    [ "$(cat "$WORK/out")" = 5001 ] || { show >&2; not_contained "$src: wrong content"; }
    d=$(cat "$WORK/$name.digest")
    [ -f "$STORE/blobs/sha256/${d#sha256:}" ] || not_contained "$src: the stored layer is not the exact blob $d"
    [ "$(sha256sum <"$STORE/blobs/sha256/${d#sha256:}" | cut -c1-64)" = "${d#sha256:}" ] || not_contained "$src: blob $d does not hash to its name"
    k rmi -f "localhost/h19-$name:1" >/dev/null 2>&1
  done
done
run_k pull "oci:$WORK/garbage"
[ "$RC" -ne 0 ] || run_k run --rm --network none localhost/h19-garbage:1 true
[ "$RC" -ne 0 ] || { show >&2; not_contained "gzip followed by garbage was accepted"; }
[ "$RC" -lt 124 ] || [ "$RC" -eq 125 ] || { show >&2; not_contained "garbage after gzip: exit $RC"; }
grep -Eqi 'garbage|trailing|gzip' "$WORK/err" || { show >&2; not_contained "the error does not say what is wrong"; }
no_staging_left
prune_check
