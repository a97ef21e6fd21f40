#!/bin/bash
# H18: a gzip bomb (~200 KiB expanding ~1000x to 200 MiB of zeros) stops at
# the expansion-ratio cap with "decompressed size limit exceeded" naming the
# layer, by pull oci: (unpack) and load (hash); nothing is named.
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
make_image layout "$WORK/bomb" bomb
layer=$(info layer0)
expect_refused "$layer.*decompressed size limit exceeded" pull -q "oci:$WORK/bomb"
make_image archive "$WORK/bomb.tar" bomb
expect_refused "$layer.*decompressed size limit exceeded" load -q -i "$WORK/bomb.tar"
exit 0
