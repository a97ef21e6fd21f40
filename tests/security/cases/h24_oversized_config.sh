#!/bin/bash
# H24: a config over 4 MiB is refused (exit 2) before anything is named
# (it used to leave the name in index.json, which rmi -f could not remove).
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
make_image layout "$WORK/big" bigconfig
expect_refused "$(info config)" pull -q "oci:$WORK/big"
[ "$(as_mode "$MODE" env KILN_ROOT="$STORE" "$KILN_BIN" pull -q "oci:$WORK/big" >/dev/null 2>&1; echo $?)" = 2 ] ||
  not_contained "exit status is not 2"
exit 0
