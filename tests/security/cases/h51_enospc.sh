#!/bin/bash
# H51: ENOSPC during pull, build and commit, with the store on a small tmpfs:
# a clear error naming "no space left on device" and the path, index.json
# unchanged, prune --check clean, and the same command succeeds once there is
# space again (the tmpfs remounted larger).
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
busybox_tar
small_store 24
# pull: a 40 MiB random layer into 24 MiB
BIG_MIB=40 make_image layout "$WORK/big" big
expect_refused "" pull -q "oci:$WORK/big"
enospc_error
# build: a RUN that fits, whose commit (the packed layer) does not
kiln_as "$MODE" "$STORE" import "$WORK/busybox.tar" busybox >/dev/null 2>"$WORK/err" || not_contained "import: $(cat "$WORK/err")"
mkdir -p "$WORK/ctx"
free_kib=$(df -k --output=avail "$MNT" | tail -1)
fill_kib=$(( free_kib * 6 / 10 ))
printf 'FROM busybox\nRUN head -c %sk /dev/urandom > /big\n' "$fill_kib" >"$WORK/ctx/Containerfile"
chown -R --reference="$WORK" "$WORK/ctx"
expect_refused "" build -q -t localhost/big:1 "$WORK/ctx"
enospc_error
# space back: the same commands work
mount -o remount,size=256m "$MNT" || not_contained "remount"
kiln_as "$MODE" "$STORE" pull -q "oci:$WORK/big" >/dev/null 2>"$WORK/err" || not_contained "pull after space came back: $(cat "$WORK/err")"
kiln_as "$MODE" "$STORE" build -q -t localhost/big:1 "$WORK/ctx" >/dev/null 2>"$WORK/err" ||
  not_contained "build after space came back: $(cat "$WORK/err")"
kiln_as "$MODE" "$STORE" prune --check >"$WORK/check" 2>&1 || not_contained "prune --check: $(cat "$WORK/check")"
exit 0
