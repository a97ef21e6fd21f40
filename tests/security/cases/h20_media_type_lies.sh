#!/usr/bin/env bash
# H20: media types that lie (`tar+gzip` holding zstd, plain or xz; `+zstd`
# holding gzip; `tar+bzip2`; a made-up type): kiln sniffs the content or
# refuses with a clear error, the same way for pull oci: and load, and never
# runs a decompressor found in PATH (fake gzip/zstd/xz/bzip2/unpigz in PATH
# must not run, for import of compressed tarballs either).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkdir -p "$WORK/fakebin"
for tool in gzip gunzip pigz unpigz zstd unzstd xz unxz bzip2 bunzip2 lz4 zcat; do
  printf '#!/bin/sh\ntouch %s/DECOMPRESSOR-RAN-%s\nexit 1\n' "$WORK" "$tool" >"$WORK/fakebin/$tool"
  chmod 755 "$WORK/fakebin/$tool"
done
mkpy "$WORK" <<'PY'
import sys, subprocess, lzma, bz2, mkhostile as mk
work = sys.argv[1]
tar = mk.Tar().file("a", "content\n").bytes()
zstd = lambda d: subprocess.run(["zstd", "-q", "-c"], input=d, stdout=subprocess.PIPE, check=True).stdout
forms = {
    "gz-is-zstd": (zstd(tar), mk.MT_LAYER_GZ),
    "gz-is-plain": (tar, mk.MT_LAYER_GZ),
    "gz-is-xz": (lzma.compress(tar), mk.MT_LAYER_GZ),
    "zstd-is-gz": (mk.gz(tar), "application/vnd.oci.image.layer.v1.tar+zstd"),
    "bzip2": (bz2.compress(tar), "application/vnd.oci.image.layer.v1.tar+bzip2"),
    "madeup": (mk.gz(tar), "application/x-evil"),
}
for name, (blob, mt) in forms.items():
    mk.image("oci", work + "/busybox.tar", [tar], "%s/%s" % (work, name), ref="localhost/h20-" + name + ":1",
             blobs=[blob], media_types=[mt])
    mk.archive("%s/%s" % (work, name), "%s/%s.tar" % (work, name))
open(work + "/plain.tar", "wb").write(tar)
open(work + "/l.tar.xz", "wb").write(lzma.compress(tar))
open(work + "/l.tar.bz2", "wb").write(bz2.compress(tar))
open(work + "/l.tar.zst", "wb").write(zstd(tar))
open(work + "/l.tar.gz", "wb").write(mk.gz(tar))
PY
own "$WORK"
kp() { as_mode "$MODE" env PATH="$WORK/fakebin:$PATH" KILN_ROOT="$STORE" "$KILN_BIN" "$@" >"$WORK/out" 2>"$WORK/err"; RC=$?; }
for name in gz-is-zstd gz-is-plain gz-is-xz zstd-is-gz bzip2 madeup; do
  srcs=("oci:$WORK/$name")
  case $name in gz-is-zstd | gz-is-plain | bzip2) srcs+=("oci-archive:$WORK/$name.tar") ;; esac
  for src in "${srcs[@]}"; do
    kp pull "$src"
    [ "$RC" -eq 0 ] && kp run --rm --network none "localhost/h20-$name:1" cat /a
    if [ "$RC" -eq 0 ]; then
      [ "$(cat "$WORK/out")" = content ] || { show >&2; not_contained "$src: accepted with the wrong content"; }
      echo "$name: accepted (sniffed)" >>"$WORK/verdicts"
    else
      case $RC in 1 | 2 | 125) ;; *) show >&2; not_contained "$src: exit $RC" ;; esac
      grep -Eqi 'media ?type|compress|unsupported|gzip|zstd|xz|bzip2|x-evil' "$WORK/err" ||
        { show >&2; not_contained "$src: the error does not say what is wrong"; }
      echo "$name: refused" >>"$WORK/verdicts"
    fi
    k rmi -f "localhost/h20-$name:1" >/dev/null 2>&1
  done
done
# one verdict per form, the same for both transports (where both ran)
for name in gz-is-zstd gz-is-plain gz-is-xz zstd-is-gz bzip2 madeup; do
  [ "$(grep "^$name:" "$WORK/verdicts" | sort -u | wc -l)" = 1 ] || { cat "$WORK/verdicts" >&2; not_contained "$name: pull oci: and oci-archive: disagree"; }
done
for f in l.tar.xz l.tar.bz2 l.tar.zst l.tar.gz; do
  kp import "$WORK/$f" "localhost/h20-import-${f##*.}"
  [ "$RC" -eq 0 ] || { show >&2; not_contained "import $f failed"; }
done
ran=$(ls "$WORK" | grep DECOMPRESSOR-RAN || true)
[ -z "$ran" ] || not_contained "kiln ran a decompressor from PATH: $ran"
prune_check
