#!/bin/bash
# (no H-id; issue [2.1b]) An image with an opaque directory (layer 1 has
# /etc/a, layer 2 /etc/.wh..wh..opq and /etc/b) pulls, loads and runs as root
# and unprivileged: `ls /etc` shows b and neither a nor the base's files.
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
busybox_tar
make_image layout "$WORK/opq" opaque "$WORK/busybox.tar"
kiln_as "$MODE" "$STORE" pull -q "oci:$WORK/opq" >/dev/null 2>"$WORK/err" || not_contained "pull: $(cat "$WORK/err")"
out=$(kiln_as "$MODE" "$STORE" run --rm localhost/hostile:opaque ls /etc 2>"$WORK/err") || not_contained "run: $(cat "$WORK/err")"
echo "$out" | grep -qx b || not_contained "ls /etc has no b: $out"
echo "$out" | grep -qx a && not_contained "ls /etc shows a (lower layer) through the opaque directory: $out"
echo "$out" | grep -qx passwd && not_contained "ls /etc shows the base's passwd: $out"
exit 0
