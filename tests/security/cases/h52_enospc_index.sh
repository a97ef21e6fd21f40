#!/bin/bash
# H52: the disk fills while index.json is rewritten (kiln tag on a full
# tmpfs): a clear error naming ENOSPC and the path, the old index.json
# intact, no temp file left behind, and tag works once space is back.
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
busybox_tar
small_store 16
kiln_as "$MODE" "$STORE" import "$WORK/busybox.tar" busybox >/dev/null 2>"$WORK/err" || not_contained "import: $(cat "$WORK/err")"
dd if=/dev/zero of="$MNT/filler" bs=64k >/dev/null 2>&1  # until ENOSPC
expect_refused "" tag busybox localhost/other:1
enospc_error
[ -z "$(ls -A "$STORE/tmp" 2>/dev/null)" ] || not_contained "temp files left in tmp/: $(ls -A "$STORE/tmp")"
rm -f "$MNT/filler"
kiln_as "$MODE" "$STORE" tag busybox localhost/other:1 2>"$WORK/err" || not_contained "tag after space came back: $(cat "$WORK/err")"
kiln_as "$MODE" "$STORE" images 2>&1 | grep -q "localhost/other" || not_contained "the new name is not listed"
kiln_as "$MODE" "$STORE" prune --check >"$WORK/check" 2>&1 || not_contained "prune --check: $(cat "$WORK/check")"
exit 0
