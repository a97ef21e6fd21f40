#!/bin/bash
# H25: rootfs.diff_ids that do not match the layers -- too many, too few, or
# the base layer's diff_id named for a second layer while the base layer's
# directory exists -- are refused before the image is named.
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
make_image layout "$WORK/good" good
kiln_as "$MODE" "$STORE" pull -q "oci:$WORK/good" >/dev/null 2>"$WORK/err" || not_contained "good image: $(cat "$WORK/err")"
for v in diffid_count diffid_short; do
  pull_and_load_refused "$v" "diff_ids for 2 layers"
done
pull_and_load_refused diffid_dup "{layer1}.*diff_id mismatch"
exit 0
