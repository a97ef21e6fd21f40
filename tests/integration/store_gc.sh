#!/usr/bin/env bash
# Garbage collection and image removal that users can trust (issues [2.1]
# item 1, [2.1b] item 7; docs/store.md "Roots and leases", docs/images.md).
# As the unprivileged test user and as root: rmi / prune -f / prune -a after
# a build FROM a local image, and after a build FROM a pulled image, keep the
# base (it is listed, runs, and `prune --check` is clean).
set -u
. "$(dirname "$0")/lib.sh"

work=$(mktemp -d /tmp/kiln-gc.XXXXXX)
chmod 755 "$work"
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export SOURCE_DATE_EPOCH=1700000000
"$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$work/busybox.tar" >/dev/null || {
  tap_not_ok "make busybox rootfs"; tap_done; exit; }
chmod 644 "$work/busybox.tar"
REG=
if command -v docker-registry >/dev/null && start_registry "$work"; then :; else REG=; fi

# base_ok MODE STORE NAME WHAT: NAME is listed (not damaged), runs `true`,
# and the store passes prune --check.
base_ok() {
  local mode=$1 store=$2 name=$3 what=$4 out
  out=$(kiln_as "$mode" "$store" images --format '{{.Names}}' 2>&1)
  if ! grep -q "$name" <<<"$out"; then
    tap_not_ok "$what: $name is still listed"; diag <<<"$out"; return
  fi
  if ! out=$(kiln_as "$mode" "$store" prune --check 2>&1); then
    tap_not_ok "$what: prune --check is clean"; grep -v '^note' <<<"$out" | diag; return
  fi
  if ! out=$(kiln_as "$mode" "$store" run --rm "$name" true 2>&1); then
    tap_not_ok "$what: $name still runs"; diag <<<"$out"; return
  fi
  tap_ok "$what: $name is listed, runs, prune --check clean"
}

# child_ctx DIR BASE: a context whose Containerfile builds FROM BASE
child_ctx() {
  mkdir -p "$1"
  printf 'FROM %s\nRUN echo x > /x\n' "$2" >"$1/Containerfile"
  chmod -R a+rX "$1"
}

# blob_of STORE NAME WHAT: the digest (hex) of the manifest, config or
# layer0 of the image named NAME, read from the store's index.json
blob_of() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
root, name, what = sys.argv[1:]
idx = json.load(open(f"{root}/index.json"))
for d in idx["manifests"]:
    if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == name:
        h = d["digest"].split(":")[1]
        if what == "manifest":
            print(h); break
        m = json.load(open(f"{root}/blobs/sha256/{h}"))
        print((m["config"] if what == "config" else m["layers"][0])["digest"].split(":")[1]); break
PY
}

# entries STORE: the number of index.json entries
entries() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]+"/index.json"))["manifests"]))' "$1"; }

for mode in $(test_modes); do
  mw=$(make_workdir "$mode")
  cp "$work/busybox.tar" "$mw/" && chmod 644 "$mw/busybox.tar"

  # ---- 1. the reproducer of [2.1]: the base survives rmi/prune of a child
  child_ctx "$mw/ctx" busybox
  for op in "rmi child" "prune -f" "prune -a -f" "rmi -f child"; do
    s="$mw/s-${op// /_}"
    import_busybox "$mode" "$s" "$mw" || { tap_not_ok "$mode: import busybox"; continue; }
    if ! kiln_as "$mode" "$s" build -q -t child "$mw/ctx" >"$mw/out" 2>&1; then
      tap_not_ok "$mode: build child FROM busybox"; diag <"$mw/out"; continue
    fi
    # shellcheck disable=SC2086
    kiln_as "$mode" "$s" $op >"$mw/out" 2>&1 || { tap_not_ok "$mode: $op"; diag <"$mw/out"; continue; }
    base_ok "$mode" "$s" localhost/busybox:latest "$mode: build FROM busybox, then $op"
  done

  # ---- 2. the same after a pull: the base came from a registry
  if [ -n "$REG" ]; then
    s0="$mw/s-push"
    import_busybox "$mode" "$s0" "$mw" &&
      kiln_as "$mode" "$s0" push -q --tls-verify=false busybox "$REG/$mode/busybox:1" >"$mw/out" 2>&1 ||
      { tap_not_ok "$mode: push busybox to $REG"; diag <"$mw/out"; }
    child_ctx "$mw/ctxp" "$REG/$mode/busybox:1"
    for op in "rmi child" "prune -f" "prune -a -f"; do
      s="$mw/sp-${op// /_}"
      if ! kiln_as "$mode" "$s" pull -q --tls-verify=false "$REG/$mode/busybox:1" >"$mw/out" 2>&1; then
        tap_not_ok "$mode: pull $REG/$mode/busybox:1"; diag <"$mw/out"; continue
      fi
      if ! kiln_as "$mode" "$s" build -q -t child "$mw/ctxp" >"$mw/out" 2>&1; then
        tap_not_ok "$mode: build child FROM the pulled image"; diag <"$mw/out"; continue
      fi
      # shellcheck disable=SC2086
      kiln_as "$mode" "$s" $op >"$mw/out" 2>&1 || { tap_not_ok "$mode: $op"; diag <"$mw/out"; continue; }
      base_ok "$mode" "$s" "$REG/$mode/busybox:1" "$mode: build FROM a pulled image, then $op"
    done
  else
    tap_skip "$mode: pull cases: docker-registry is not installed or does not start"
  fi

  rm -rf "$mw"
done
tap_done
