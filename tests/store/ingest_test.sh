#!/bin/bash
# What the store accepts from outside, through the real CLI, as the test user
# and as root (docs/store.md "What a name guarantees"): lying descriptor
# sizes, diff_ids that do not match the layers, oversized configs, deep or
# cyclic indexes, a manifest reused under a wrong size, a gzip bomb -- each
# refused naming the digest, with index.json byte for byte unchanged and
# `prune --check` clean -- and images with opaque directories that run.
# Local layouts and archives are made by tests/store/hostile_images.py, the
# registry pulls go to Debian's docker-registry on loopback.
source "$(dirname "$0")/../integration/lib.sh"
HI="$KILN_SOURCE_ROOT/tests/store/hostile_images.py"

# refused MODE STORE PATTERN ARGS...: kiln ARGS fails, its stderr matches
# PATTERN, and the store is as it was (index.json identical, check clean).
refused() {
  local mode=$1 store=$2 pattern=$3; shift 3
  local before after rc
  before=$(cat "$store/index.json" 2>/dev/null | sha256sum)
  as_mode "$mode" env KILN_ROOT="$store" timeout 120 "$KILN_BIN" "$@" >"$work/out" 2>"$work/err" </dev/null
  rc=$?
  echo "$rc" >"$work/rc"
  after=$(cat "$store/index.json" 2>/dev/null | sha256sum)
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
    echo "kiln $* exited $rc" >"$work/why"; return 1
  fi
  if ! grep -qE -- "$pattern" "$work/err"; then
    { echo "stderr does not match $pattern:"; cat "$work/err"; } >"$work/why"; return 1
  fi
  if [ "$before" != "$after" ]; then
    { echo "index.json changed:"; cat "$store/index.json"; } >"$work/why"; return 1
  fi
  if ! kiln_as "$mode" "$store" prune --check >"$work/check" 2>&1; then
    { echo "prune --check:"; cat "$work/check"; } >"$work/why"; return 1
  fi
  return 0
}
check() {  # check NAME CMD...: tap line from a command's status
  local name=$1; shift
  if "$@"; then tap_ok "$name"; else tap_not_ok "$name"; diag <"$work/why"; fi
}

make_image() {  # make_image KIND TARGET VARIANT [BUSYBOX]: prints key=value lines
  python3 "$HI" "$@" >"$work/info" || return 1
  chmod -R a+rX "$2" 2>/dev/null
  return 0
}
info() { sed -n "s/^$1=//p" "$work/info"; }
# refused_pull_and_load VARIANT LAYER_KEY MESSAGE WHAT: the VARIANT image as a
# layout (pull oci:) and as an archive (load) is refused in $store, naming its
# LAYER_KEY layer and MESSAGE.
refused_pull_and_load() {
  local v=$1 key=$2 msg=$3 what=$4 layer
  make_image layout "$work/$v" "$v"
  layer=$(info "$key")
  check "$mode: pull oci: $what naming $layer" refused "$mode" "$store" "$layer.*$msg" pull -q "oci:$work/$v"
  make_image archive "$work/$v.tar" "$v"
  check "$mode: load $what" refused "$mode" "$store" "$layer.*$msg" load -q -i "$work/$v.tar"
}
new_store() {  # new_store DIR: an empty store the mode's user owns
  rm -rf "$1"; mkdir -p "$1"; chown -R --reference="$work" "$1"
  kiln_as "$mode" "$1" images >/dev/null 2>&1
}

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  "$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$work/busybox.tar" >/dev/null && chmod 644 "$work/busybox.tar"
  echo "ok" >"$work/why"

  # --- descriptor sizes: 0, +1, -1 on a layer, by oci:, oci-archive: and load
  for v in size0 size_plus1 size_minus1; do
    store=$work/s-$v; new_store "$store"
    make_image layout "$work/$v" "$v"
    layer=$(info layer1)
    check "$mode: pull oci: with a layer size lie ($v) is refused naming $layer" \
      refused "$mode" "$store" "(size.*$layer|$layer.*size)" pull -q "oci:$work/$v"
    make_image archive "$work/$v.tar" "$v"
    check "$mode: pull oci-archive: with a layer size lie ($v) is refused" \
      refused "$mode" "$store" "(size.*$layer|$layer.*size)" pull -q "oci-archive:$work/$v.tar"
    check "$mode: load of an oci-archive with a layer size lie ($v) is refused" \
      refused "$mode" "$store" "(size.*$layer|$layer.*size)" load -q -i "$work/$v.tar"
  done

  # --- diff_ids: count and content
  store=$work/s-diff; new_store "$store"
  make_image layout "$work/good" good
  kiln_as "$mode" "$store" pull -q "oci:$work/good" >/dev/null 2>"$work/err" || diag <"$work/err"
  for v in diffid_count diffid_short; do
    make_image layout "$work/$v" "$v"
    check "$mode: pull oci: with a diff_ids count unlike the layer count ($v) is refused" \
      refused "$mode" "$store" "diff_ids for 2 layers" pull -q "oci:$work/$v"
    make_image archive "$work/$v.tar" "$v"
    check "$mode: load with a diff_ids count unlike the layer count ($v) is refused" \
      refused "$mode" "$store" "diff_ids for 2 layers" load -q -i "$work/$v.tar"
  done
  # The base layer's diff_id named for a second layer, with the base's layer
  # directory already present: refused, the real layer is checked.
  refused_pull_and_load diffid_dup layer1 "diff_id mismatch" \
    "whose config names the base layer's diff_id for layer 2 is refused"

  # --- a manifest already in the store, named with a wrong size
  make_image layout "$work/msize" manifest_size_lie
  check "$mode: pull oci: giving a wrong size for a manifest already in the store is refused" \
    refused "$mode" "$store" "$(info manifest).*size mismatch" pull -q "oci:$work/msize"

  # --- oversized config (exit 2), deep nesting, cycles, 100,000 manifests
  make_image layout "$work/big" bigconfig
  check "$mode: pull oci: with a config over 4 MiB is refused and names nothing" \
    refused "$mode" "$store" "$(info config)" pull -q "oci:$work/big"
  [ "$(cat "$work/rc")" = 2 ] && tap_ok "$mode: ... with exit status 2" || tap_not_ok "$mode: ... with exit status 2 (got $(cat "$work/rc"))"
  for depth in 2 10; do
    DEPTH=$depth make_image layout "$work/deep$depth" deepnest
    check "$mode: pull oci: of an index nested $depth deep is refused and names nothing" \
      refused "$mode" "$store" "sha256:" pull -q "oci:$work/deep$depth"
  done
  for v in cycle_self cycle_ab; do
    make_image layout "$work/$v" "$v"
    check "$mode: pull oci: of an index cycle ($v) is refused at once" \
      refused "$mode" "$store" "sha256:aaaa" pull -q "oci:$work/$v"
  done
  make_image archive "$work/many.tar" many
  check "$mode: load of an index of 100,000 manifests is refused" \
    refused "$mode" "$store" "larger than|too large|4194304" load -q -i "$work/many.tar"

  # --- gzip bomb (~200 KiB expanding 1000x) stops at the ratio cap
  refused_pull_and_load bomb layer0 "decompressed size limit exceeded" "of a gzip bomb stops at the ratio cap"
  kiln_as "$mode" "$store" prune -f >/dev/null 2>&1

  # --- the good image still pulls, loads and runs; the store is consistent
  kiln_as "$mode" "$store" images >"$work/why" 2>&1
  if [ "$(grep -c localhost/hostile "$work/why")" = 1 ] && grep -q 'localhost/hostile *good' "$work/why" &&
     kiln_as "$mode" "$store" prune --check >>"$work/why" 2>&1; then
    tap_ok "$mode: after the refusals the store holds only the good image and checks clean"
  else
    tap_not_ok "$mode: after the refusals the store holds only the good image and checks clean"
    diag <"$work/why"
  fi

  # --- opaque whiteouts: pull oci: and load, then ls /etc shows only b
  store=$work/s-opq; new_store "$store"
  make_image layout "$work/opq" opaque "$work/busybox.tar"
  make_image archive "$work/opq.tar" opaque "$work/busybox.tar"
  for how in pull load; do
    new_store "$store"
    if [ $how = pull ]; then
      kiln_as "$mode" "$store" pull -q "oci:$work/opq" >"$work/out" 2>"$work/err"
    else
      kiln_as "$mode" "$store" load -q -i "$work/opq.tar" >"$work/out" 2>"$work/err"
    fi
    rc=$?
    ls_out=$(kiln_as "$mode" "$store" run --rm localhost/hostile:opaque ls /etc 2>>"$work/err")
    if [ $rc -eq 0 ] && echo "$ls_out" | grep -qx b && ! echo "$ls_out" | grep -qx a &&
       ! echo "$ls_out" | grep -qx passwd; then
      tap_ok "$mode: $how of an image with an opaque /etc runs and ls /etc shows b, not a or the base's files"
    else
      tap_not_ok "$mode: $how of an image with an opaque /etc runs and ls /etc shows b, not a or the base's files"
      { echo "rc=$rc ls:"; echo "$ls_out"; cat "$work/err"; } | diag
    fi
  done

  # --- registry pulls
  if command -v docker-registry >/dev/null && mkdir -p "$work/reg" && start_registry "$work/reg"; then
    store=$work/s-reg; new_store "$store"
    for v in good size_plus1 size0 diffid_count diffid_dup; do
      python3 "$HI" push "$REG" "$v" >"$work/info.$v" 2>"$work/err" || diag <"$work/err"
    done
    kiln_as "$mode" "$store" pull -q "$REG/hostile:good" >/dev/null 2>"$work/err" || diag <"$work/err"
    for v in size_plus1 size0; do
      layer=$(sed -n 's/^layer1=//p' "$work/info.$v")
      check "$mode: registry pull with a layer size lie ($v) is refused naming $layer" \
        refused "$mode" "$store" "(size.*$layer|$layer.*size)" pull -q "$REG/hostile:$v"
    done
    check "$mode: registry pull with a diff_ids count unlike the layer count is refused" \
      refused "$mode" "$store" "diff_ids for 2 layers" pull -q "$REG/hostile:diffid_count"
    layer=$(sed -n 's/^layer1=//p' "$work/info.diffid_dup")
    check "$mode: registry pull whose config names the base layer's diff_id for layer 2 is refused" \
      refused "$mode" "$store" "$layer.*diff_id mismatch" pull -q "$REG/hostile:diffid_dup"
    kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null
  else
    tap_skip "$mode: registry pulls (no docker-registry)"
  fi
  rm -rf "$work"
done
tap_done
