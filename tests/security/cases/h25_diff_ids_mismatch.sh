#!/bin/bash
# H25: rootfs.diff_ids that do not match the layers -- too many, too few, or
# the base layer's diff_id named for a second layer while the base layer's
# directory exists -- are refused before the image is named.
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
make_image layout "$WORK/good" good
kiln_as "$MODE" "$STORE" pull -q "oci:$WORK/good" >/dev/null 2>"$WORK/err" || not_contained "good image: $(cat "$WORK/err")"
for v in diffid_count diffid_short; do
  make_image layout "$WORK/$v" "$v"
  expect_refused "diff_ids for 2 layers" pull -q "oci:$WORK/$v"
  make_image archive "$WORK/$v.tar" "$v"
  expect_refused "diff_ids for 2 layers" load -q -i "$WORK/$v.tar"
done
make_image layout "$WORK/dup" diffid_dup
layer=$(info layer1)
expect_refused "$layer.*diff_id mismatch" pull -q "oci:$WORK/dup"
make_image archive "$WORK/dup.tar" diffid_dup
expect_refused "$layer.*diff_id mismatch" load -q -i "$WORK/dup.tar"
exit 0
