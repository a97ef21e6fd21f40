#!/bin/bash
# H22: a descriptor whose size is wrong (0, +1, -1) is refused at the door,
# naming the digest, by pull oci:, pull oci-archive: and load; also for a
# manifest that is already in the store (reused only when the sizes agree).
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
for v in size0 size_plus1 size_minus1; do
  make_image layout "$WORK/$v" "$v"
  layer=$(info layer1)
  expect_refused "(size.*$layer|$layer.*size)" pull -q "oci:$WORK/$v"
  make_image archive "$WORK/$v.tar" "$v"
  expect_refused "(size.*$layer|$layer.*size)" pull -q "oci-archive:$WORK/$v.tar"
  expect_refused "(size.*$layer|$layer.*size)" load -q -i "$WORK/$v.tar"
done
make_image layout "$WORK/good" good
kiln_as "$MODE" "$STORE" pull -q "oci:$WORK/good" >/dev/null 2>"$WORK/err" || not_contained "good image: $(cat "$WORK/err")"
make_image layout "$WORK/msize" manifest_size_lie
expect_refused "$(info manifest).*size mismatch" pull -q "oci:$WORK/msize"
exit 0
