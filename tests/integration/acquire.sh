#!/usr/bin/env bash
# Getting an image (include/kiln/acquire.h, docs/images.md): run and build
# resolve a name in the store, else pull it as --pull says (missing, always,
# never, newer), against a docker-registry on loopback. As the unprivileged
# test user and as root.
set -u
. "$(dirname "$0")/lib.sh"

registry_workdir acquire

for mode in $(test_modes); do
  mw=$(make_workdir "$mode")
  src=$mw/src
  import_busybox "$mode" "$src" "$mw" || { tap_not_ok "$mode: import busybox"; continue; }
  app=$REG/$mode/app
  # Two versions of app:1 in the registry, one after the other.
  for v in one two; do
    printf 'FROM busybox\nRUN echo %s >/v\n' "$v" >"$mw/Containerfile.$v"
    chmod 644 "$mw/Containerfile.$v"
  done
  if kiln_as "$mode" "$src" build -q -f "$mw/Containerfile.one" -t "$app:1" "$mw" >/dev/null 2>"$mw/err" &&
     kiln_as "$mode" "$src" push "$app:1" >/dev/null 2>>"$mw/err"; then
    tap_ok "$mode: push $app:1 (version one)"
  else
    tap_not_ok "$mode: build and push version one"; diag <"$mw/err"; continue
  fi

  s=$mw/store
  # never: nothing stored, nothing pulled.
  if ! kiln_as "$mode" "$s" run --rm --pull=never "$app:1" cat /v >"$mw/out" 2>"$mw/err" &&
     grep -q "image not known: $app:1" "$mw/err" && [ -z "$(kiln_as "$mode" "$s" images -q 2>/dev/null)" ]; then
    tap_ok "$mode: run --pull=never of an image not stored fails and pulls nothing"
  else
    tap_not_ok "$mode: run --pull=never"; diag <"$mw/err"
  fi
  # missing (the default): pulled, named by its reference, then run.
  if [ "$(kiln_as "$mode" "$s" run --rm "$app:1" cat /v 2>"$mw/err")" = one ] &&
     kiln_as "$mode" "$s" images 2>/dev/null | grep -q "^$app  *1 "; then
    tap_ok "$mode: run of a missing image pulls it and names it $app:1"
  else
    tap_not_ok "$mode: run pulls a missing image"; diag <"$mw/err"
  fi
  # The registry moves on to version two.
  kiln_as "$mode" "$src" build -q -f "$mw/Containerfile.two" -t "$app:1" "$mw" >/dev/null 2>"$mw/err" &&
    kiln_as "$mode" "$src" push "$app:1" >/dev/null 2>>"$mw/err" || { tap_not_ok "$mode: push version two"; diag <"$mw/err"; }
  # missing: the stored version one, no pull.
  out=$(kiln_as "$mode" "$s" run --rm "$app:1" cat /v 2>"$mw/err")
  if [ "$out" = one ] && ! grep -q "Copying" "$mw/err"; then
    tap_ok "$mode: run --pull=missing of a stored image uses it without pulling"
  else
    tap_not_ok "$mode: run --pull=missing printed '$out'"; diag <"$mw/err"
  fi
  # build FROM with --pull=never and missing: still version one.
  printf 'FROM %s\nRUN cat /v >/w\nCMD ["cat", "/w"]\n' "$app:1" >"$mw/Containerfile.child"
  chmod 644 "$mw/Containerfile.child"
  if kiln_as "$mode" "$s" build -q --pull=never -f "$mw/Containerfile.child" -t child "$mw" >/dev/null 2>"$mw/err" &&
     [ "$(kiln_as "$mode" "$s" run --rm child 2>>"$mw/err")" = one ]; then
    tap_ok "$mode: build --pull=never FROM a stored image uses it"
  else
    tap_not_ok "$mode: build --pull=never"; diag <"$mw/err"
  fi
  # always: version two, for run and for build.
  if [ "$(kiln_as "$mode" "$s" run --rm --pull=always "$app:1" cat /v 2>"$mw/err")" = two ]; then
    tap_ok "$mode: run --pull=always pulls the registry's newer image"
  else
    tap_not_ok "$mode: run --pull=always"; diag <"$mw/err"
  fi
  if kiln_as "$mode" "$s" build -q --pull=always -f "$mw/Containerfile.child" -t child "$mw" >/dev/null 2>"$mw/err" &&
     [ "$(kiln_as "$mode" "$s" run --rm child 2>>"$mw/err")" = two ]; then
    tap_ok "$mode: build --pull=always FROM the registry image uses what it pulled"
  else
    tap_not_ok "$mode: build --pull=always"; diag <"$mw/err"
  fi
  # newer with the registry unreachable: a warning, then the stored image;
  # always fails.
  down=127.0.0.1:1/$mode/app:1
  kiln_as "$mode" "$s" tag "$app:1" "$down" >/dev/null 2>&1
  printf 'FROM %s\nRUN cat /v >/w\nCMD ["cat", "/w"]\n' "$down" >"$mw/Containerfile.down"
  chmod 644 "$mw/Containerfile.down"
  if kiln_as "$mode" "$s" build -q --pull=newer -f "$mw/Containerfile.down" -t down "$mw" >/dev/null 2>"$mw/err" &&
     grep -q "warning: pull $down" "$mw/err" && [ "$(kiln_as "$mode" "$s" run --rm down 2>>"$mw/err")" = two ]; then
    tap_ok "$mode: build --pull=newer with the registry down warns and uses the stored image"
  else
    tap_not_ok "$mode: build --pull=newer, registry down"; diag <"$mw/err"
  fi
  kiln_as "$mode" "$s" build -q --pull=always -f "$mw/Containerfile.down" -t down "$mw" >/dev/null 2>"$mw/err"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "pull $down" "$mw/err"; then
    tap_ok "$mode: build --pull=always with the registry down fails (exit 1) naming the pull"
  else
    tap_not_ok "$mode: build --pull=always, registry down: exit $rc"; diag <"$mw/err"
  fi
  # pull then prune: nothing the pull made is lost (its lease ended with the name in place).
  if kiln_as "$mode" "$s" prune -a >/dev/null 2>"$mw/err" && kiln_as "$mode" "$s" prune --check >/dev/null 2>>"$mw/err"; then
    tap_ok "$mode: the store is consistent after the pulls (prune --check)"
  else
    tap_not_ok "$mode: prune --check after the pulls"; diag <"$mw/err"
  fi
  rm -rf "$mw"
done
tap_done
