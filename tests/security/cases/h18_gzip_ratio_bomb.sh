#!/bin/bash
# H18: a gzip bomb (~200 KiB expanding ~1000x to 200 MiB of zeros) stops at
# the expansion-ratio cap with "decompressed size limit exceeded" naming the
# layer, by pull oci: (unpack) and load (hash); nothing is named.
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
pull_and_load_refused bomb "{layer0}.*decompressed size limit exceeded"
exit 0
