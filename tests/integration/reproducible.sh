#!/usr/bin/env bash
# Reproducibility: with SOURCE_DATE_EPOCH set, the same build in two
# different stores, and again with --no-cache, gives the same image ID.
set -u
. "$(dirname "$0")/lib.sh"
EXAMPLE=${KILN_TESTDATA:-$KILN_SOURCE_ROOT/testdata}/examples/hello
for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  export SOURCE_DATE_EPOCH=1700000000
  ids=()
  for store in "$work/a" "$work/b"; do
    import_busybox "$mode" "$store" "$work" || { tap_not_ok "$mode: import"; continue 2; }
    ids+=("$(kiln_as "$mode" "$store" build -q -t hello "$EXAMPLE" 2>"$work/err")") || true
  done
  ids+=("$(kiln_as "$mode" "$work/a" build -q --no-cache -t hello "$EXAMPLE" 2>>"$work/err")") || true
  if [ -n "${ids[0]}" ] && [ "${ids[0]}" = "${ids[1]}" ] && [ "${ids[0]}" = "${ids[2]}" ]; then
    tap_ok "$mode: same image ID from two stores and with --no-cache (${ids[0]})"
  else
    tap_not_ok "$mode: image IDs differ: ${ids[*]}"; diag <"$work/err"
  fi
  unset SOURCE_DATE_EPOCH
  # Without it the config's created time changes, so the ID does too.
  sleep 1
  other=$(kiln_as "$mode" "$work/a" build -q -t hello "$EXAMPLE" 2>>"$work/err")
  if [ -n "$other" ] && [ "$other" != "${ids[0]}" ]; then tap_ok "$mode: without SOURCE_DATE_EPOCH the created time differs"
  else tap_not_ok "$mode: build without SOURCE_DATE_EPOCH gave $other"; diag <"$work/err"; fi
  rm -rf "$work"
done
tap_done
