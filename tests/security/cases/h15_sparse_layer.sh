#!/usr/bin/env bash
# H15 (sparse files, issue [2.1]): a layer holding an 8 GiB sparse file, then
# `RUN chmod 600` on it, took 26 s and made a 38 MB layer. Files with holes
# are packed as PAX sparse entries: the build takes a few seconds, both
# layers are a few KB, and the layer unpacks (GNU tar) to a file that is
# still sparse with the same content as a sparse reference.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
need_busybox
containerfile <<'CF'
FROM busybox
RUN truncate -s 8G /big && printf start | dd of=/big conv=notrunc 2>/dev/null && printf end | dd of=/big bs=1 seek=8589934589 conv=notrunc 2>/dev/null
RUN chmod 600 /big
CF
t0=$(date +%s)
k build -q -f Containerfile -t sparse ctx >/dev/null 2>err ||
  { cat err >&2; echo "the build failed" >&2; exit 1; }
secs=$(( $(date +%s) - t0 ))
[ "$secs" -le 20 ] || { echo "the build took $secs s (it was 26 s when packing read the holes)" >&2; exit 1; }
k save --format oci-archive -o "$WORK/s.tar" sparse 2>err || { cat err >&2; exit 1; }
mkdir -p x l && tar -xf s.tar -C x || exit 1
read -r s1 s2 last < <(python3 - x <<'PY'
import json, sys
d = sys.argv[1]
m = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")[1]
ls = json.load(open(d + "/blobs/sha256/" + m))["layers"]
print(ls[-2]["size"], ls[-1]["size"], ls[-1]["digest"].split(":")[1])
PY
)
[ "$s1" -lt 65536 ] && [ "$s2" -lt 65536 ] || { echo "layers of $s1 and $s2 bytes (want a few KB)" >&2; exit 1; }
tar -xzf "x/blobs/sha256/$last" -C l big || { echo "GNU tar cannot extract the layer" >&2; exit 1; }
truncate -s 8G ref && printf start | dd of=ref conv=notrunc 2>/dev/null &&
  printf end | dd of=ref bs=1 seek=8589934589 conv=notrunc 2>/dev/null
blocks=$(python3 "$KILN_SOURCE_ROOT/tests/integration/sparse_cmp.py" --blocks l/big)
[ "$blocks" -lt 8388608 ] || { echo "extracted /big takes $blocks bytes: not sparse" >&2; exit 1; }
python3 "$KILN_SOURCE_ROOT/tests/integration/sparse_cmp.py" ref l/big || { echo "content differs from the reference" >&2; exit 1; }
[ "$(stat -c %a l/big)" = 600 ] || { echo "mode $(stat -c %a l/big), want 600" >&2; exit 1; }
exit 0
