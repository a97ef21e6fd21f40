#!/bin/bash
# H26: index cycles (an index naming itself, A -> B -> A), an index nested 10
# deep, and an index of 100,000 manifests: each refused quickly with a clear
# error; nothing is named.
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
for v in cycle_self cycle_ab; do
  pull_and_load_refused "$v" "sha256:aaaa"
done
DEPTH=10 make_image layout "$WORK/deep" deepnest
expect_refused "sha256:" pull -q "oci:$WORK/deep"
make_image archive "$WORK/many.tar" many
start=$(date +%s)
expect_refused "sha256:" load -q -i "$WORK/many.tar"
make_image layout "$WORK/many" many
expect_refused "sha256:" pull -q "oci:$WORK/many"
[ $(( $(date +%s) - start )) -le 60 ] || not_contained "100,000 manifests took over 60 s to refuse"
exit 0
