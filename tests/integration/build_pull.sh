#!/usr/bin/env bash
# Images a build names but the store lacks are pulled once, through the one
# "resolve, else pull" of the engine (issue [2.3], docs/build.md): FROM
# NAME@DIGEST pulls that digest; COPY --from=IMAGE pulls IMAGE and its cache
# key is the pulled image's digest, so when the name later points at another
# image the COPY runs again instead of hitting the old result. As the test
# user and as root, against a loopback docker-registry.
set -u
. "$(dirname "$0")/lib.sh"

registry_workdir build-pull
export SOURCE_DATE_EPOCH=1700000000

for mode in $(test_modes); do
  w=$(make_workdir "$mode"); s1="$w/s1"; s2="$w/s2"
  import_busybox "$mode" "$s1" "$w" || { tap_not_ok "$mode: import busybox"; continue; }
  as_mode "$mode" mkdir -p "$w/src" "$w/app"
  as_mode "$mode" sh -c "printf 'FROM busybox\nARG V\nRUN echo \$V >/marker\n' >'$w/src/Containerfile'"
  ok=1
  for v in one two; do
    kiln_as "$mode" "$s1" build -q --build-arg V=$v -t src-$v "$w/src" >/dev/null 2>"$w/err" || ok=0
  done
  kiln_as "$mode" "$s1" push -q --tls-verify=false busybox "$REG/$mode/bb:1" >/dev/null 2>>"$w/err" || ok=0
  kiln_as "$mode" "$s1" push -q --tls-verify=false src-one "$REG/$mode/src:1" >/dev/null 2>>"$w/err" || ok=0
  if [ $ok = 0 ]; then tap_not_ok "$mode: set up images in $REG"; diag <"$w/err"; continue; fi
  digest=$(kiln_as "$mode" "$s1" inspect --format '{{.Digest}}' busybox)

  as_mode "$mode" sh -c "printf 'FROM %s\nCOPY --from=%s /marker /m\nRUN cat /m\n' '$REG/$mode/bb@$digest' '$REG/$mode/src:1' >'$w/app/Containerfile'"
  if kiln_as "$mode" "$s2" build --tls-verify=false -t app "$w/app" >"$w/out" 2>&1 &&
     [ "$(kiln_as "$mode" "$s2" run --rm --network none app cat /m 2>/dev/null)" = one ]; then
    tap_ok "$mode: FROM NAME@DIGEST and COPY --from=IMAGE the store lacks are pulled, and the build uses them"
  else
    tap_not_ok "$mode: FROM NAME@DIGEST and COPY --from=IMAGE the store lacks are pulled"; diag <"$w/out"
  fi

  # The name now points at another image; the old one leaves the store.
  kiln_as "$mode" "$s1" push -q --tls-verify=false src-two "$REG/$mode/src:1" >/dev/null 2>&1
  kiln_as "$mode" "$s2" rmi "$REG/$mode/src:1" >/dev/null 2>&1
  if kiln_as "$mode" "$s2" build --tls-verify=false -t app "$w/app" >"$w/out" 2>&1 &&
     [ "$(kiln_as "$mode" "$s2" run --rm --network none app cat /m 2>/dev/null)" = two ]; then
    tap_ok "$mode: COPY --from=IMAGE whose name now names another image runs again with the new content"
  else
    tap_not_ok "$mode: COPY --from=IMAGE whose name now names another image runs again"; diag <"$w/out"
  fi

  # A pinned digest the registry does not have is an error naming it, not the tag's image.
  zeros=0000000000000000000000000000000000000000000000000000000000000000
  as_mode "$mode" sh -c "printf 'FROM %s\n' '$REG/$mode/bb@sha256:$zeros' >'$w/app/Containerfile'"
  if kiln_as "$mode" "$s2" build --tls-verify=false "$w/app" >"$w/out" 2>&1; then
    tap_not_ok "$mode: FROM NAME@DIGEST of a digest the registry lacks fails"; diag <"$w/out"
  elif grep -q "Containerfile:1" "$w/out" && grep -q "sha256:0000" "$w/out"; then
    tap_ok "$mode: FROM NAME@DIGEST of a digest the registry lacks fails naming Containerfile:1 and the digest"
  else
    tap_not_ok "$mode: the error names Containerfile:1 and the digest"; diag <"$w/out"
  fi
  rm -rf "$w"
done
tap_done
