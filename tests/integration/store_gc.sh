#!/usr/bin/env bash
# Garbage collection and image removal that users can trust (issues [2.1]
# item 1, [2.1b] item 7; docs/store.md "Roots and leases", docs/images.md).
# As the unprivileged test user and as root:
#  - rmi / prune -f / prune -a after a build FROM a local image, and after a
#    build FROM a pulled image, keep the base (it is listed, runs, and
#    `prune --check` is clean);
#  - an image with a missing blob is listed as damaged, `rmi` removes it
#    (by name, -f, by digest) and a load of the same image repairs it;
#  - rmi of an image a container uses is refused without -f (podman: exit 2,
#    "image used by ID: image is in use by a container"); -f removes the
#    container too;
#  - loading an image that is already present adds names only; `rmi ID`
#    with several matches is refused with the candidates listed.
set -u
. "$(dirname "$0")/lib.sh"

temp_workdir gc
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
    # repair: a pull of the same image writes a missing layer again
    s="$mw/sp-repair"
    kiln_as "$mode" "$s" pull -q --tls-verify=false "$REG/$mode/busybox:1" >/dev/null 2>&1
    rm -f "$s/blobs/sha256/$(blob_of "$s" "$REG/$mode/busybox:1" layer0)"
    if kiln_as "$mode" "$s" pull -q --tls-verify=false "$REG/$mode/busybox:1" >"$mw/out" 2>&1; then
      base_ok "$mode" "$s" "$REG/$mode/busybox:1" "$mode: a layer blob missing, then a pull of the same image repairs it"
    else
      tap_not_ok "$mode: pull of a damaged image"; diag <"$mw/out"
    fi
  else
    tap_skip "$mode: pull cases: docker-registry is not installed or does not start"
  fi

  # ---- 3. damaged images: listed, removable, repaired by a load
  s="$mw/s-damaged"
  import_busybox "$mode" "$s" "$mw" &&
    kiln_as "$mode" "$s" save -o "$mw/bb-oci.tar" --format oci-archive busybox >"$mw/out" 2>&1 ||
    { tap_not_ok "$mode: import and save busybox"; diag <"$mw/out"; }
  n=localhost/busybox:latest
  id=$(kiln_as "$mode" "$s" images -q --no-trunc 2>/dev/null | head -1)
  for what in layer0 config manifest; do
    h=$(blob_of "$s" "$n" "$what")
    rm -f "$s/blobs/sha256/$h"
    out=$(kiln_as "$mode" "$s" images 2>"$mw/err"); rc=$?
    if [ $rc = 0 ] && grep -q "localhost/busybox.*damaged" <<<"$out" && grep -q "damaged" "$mw/err"; then
      tap_ok "$mode: $what blob missing: images lists busybox as damaged (exit 0, a warning)"
    else
      tap_not_ok "$mode: $what blob missing: images lists busybox as damaged (rc $rc)"; diag <<<"$out"; diag <"$mw/err"
    fi
    if kiln_as "$mode" "$s" load -i "$mw/bb-oci.tar" >"$mw/out" 2>&1; then
      base_ok "$mode" "$s" "$n" "$mode: $what blob missing, then load of the same image repairs it"
    else
      tap_not_ok "$mode: $what blob missing: load of the same image"; diag <"$mw/out"
    fi
  done
  # rmi of a damaged image: by name, by -f ID, by manifest digest
  for how in name id digest; do
    h=$(blob_of "$s" "$n" layer0)
    m=$(blob_of "$s" "$n" manifest)
    [ "$how" = digest ] && rm -f "$s/blobs/sha256/$(blob_of "$s" "$n" config)"
    rm -f "$s/blobs/sha256/$h"
    case $how in name) arg=busybox; f= ;; id) arg=$id; f=-f ;; digest) arg=sha256:$m; f= ;; esac
    if kiln_as "$mode" "$s" rmi $f "$arg" >"$mw/out" 2>"$mw/err" && grep -q damaged "$mw/err" &&
       [ -z "$(kiln_as "$mode" "$s" images -q 2>&1)" ] && kiln_as "$mode" "$s" prune --check >/dev/null 2>&1; then
      tap_ok "$mode: rmi $f ${how} of a damaged image removes it with a warning; prune --check clean"
    else
      tap_not_ok "$mode: rmi $f $how of a damaged image"; diag <"$mw/out"; diag <"$mw/err"
      kiln_as "$mode" "$s" images 2>&1 | diag
    fi
    kiln_as "$mode" "$s" load -i "$mw/bb-oci.tar" >/dev/null 2>&1
  done

  # ---- 4. rmi of an image a container uses (podman: exit 2 without -f)
  s="$mw/s-inuse"
  import_busybox "$mode" "$s" "$mw"
  id=$(kiln_as "$mode" "$s" images -q --no-trunc 2>/dev/null | head -1)
  kiln_as "$mode" "$s" run --name c1 busybox true >"$mw/out" 2>&1 || { tap_not_ok "$mode: run c1"; diag <"$mw/out"; }
  kiln_as "$mode" "$s" rmi busybox >"$mw/out" 2>"$mw/err"; rc=$?
  if [ $rc = 2 ] && grep -q "image used by [0-9a-f]*: image is in use by a container" "$mw/err" &&
     kiln_as "$mode" "$s" images 2>&1 | grep -q localhost/busybox &&
     kiln_as "$mode" "$s" ps -a 2>&1 | grep -q c1; then
    tap_ok "$mode: rmi of an image a container uses is refused (exit 2, podman's message)"
  else
    tap_not_ok "$mode: rmi of an image in use (rc $rc)"; diag <"$mw/err"
  fi
  # prune -a keeps an unnamed image a container uses
  child_ctx "$mw/ctx2" busybox
  kiln_as "$mode" "$s" build -q -t child "$mw/ctx2" >/dev/null 2>&1
  kiln_as "$mode" "$s" run --name c2 busybox true >/dev/null 2>&1
  kiln_as "$mode" "$s" tag child busybox >/dev/null 2>&1
  kiln_as "$mode" "$s" prune -a -f >"$mw/out" 2>&1
  if kiln_as "$mode" "$s" images -q --no-trunc 2>&1 | grep -q "$id" &&
     kiln_as "$mode" "$s" start c2 >"$mw/out" 2>&1 && kiln_as "$mode" "$s" prune --check >/dev/null 2>&1; then
    tap_ok "$mode: prune -a keeps the unnamed image a container uses (it starts again)"
  else
    tap_not_ok "$mode: prune -a keeps the unnamed image of a container"; diag <"$mw/out"
  fi
  kiln_as "$mode" "$s" rmi -f "$id" >"$mw/out" 2>&1; rc=$?
  if [ $rc = 0 ] && ! kiln_as "$mode" "$s" ps -a 2>&1 | grep -qw "c1\|c2" &&
     ! kiln_as "$mode" "$s" images -q --no-trunc 2>&1 | grep -q "$id" &&
     kiln_as "$mode" "$s" prune --check >/dev/null 2>&1; then
    tap_ok "$mode: rmi -f removes the image and the containers that use it"
  else
    tap_not_ok "$mode: rmi -f of an image in use (rc $rc)"; diag <"$mw/out"; kiln_as "$mode" "$s" ps -a 2>&1 | diag
  fi

  # ---- 5. [2.1b] 7: loading an image that is already present adds names only
  # (a built image: its layers were packed by the build, so the archive's
  # layers come back under other digests and the manifest differs)
  s="$mw/s-load"
  import_busybox "$mode" "$s" "$mw"
  child_ctx "$mw/ctx3" busybox
  kiln_as "$mode" "$s" build -q -t child "$mw/ctx3" >"$mw/out" 2>&1 || { tap_not_ok "$mode: build child"; diag <"$mw/out"; }
  id=$(kiln_as "$mode" "$s" inspect --format '{{.Id}}' child 2>/dev/null)
  kiln_as "$mode" "$s" save -o "$mw/child-docker.tar" --format docker-archive child >/dev/null 2>&1
  kiln_as "$mode" "$s" tag child other >/dev/null 2>&1
  kiln_as "$mode" "$s" load -i "$mw/child-docker.tar" >"$mw/out" 2>&1
  out=$(kiln_as "$mode" "$s" images 2>&1)
  digests=$(python3 -c 'import json,sys; print(len({d["digest"] for d in json.load(open(sys.argv[1]+"/index.json"))["manifests"]}))' "$s")
  if [ "$(entries "$s")" = 3 ] && [ "$digests" = 2 ] &&
     ! grep -q "<none>" <<<"$out" && grep -q localhost/child <<<"$out" && grep -q localhost/other <<<"$out"; then
    tap_ok "$mode: load of a built image already present adds names only (no second copy, no <none>)"
  else
    tap_not_ok "$mode: load of an image already present"; diag <"$mw/out"; diag <<<"$out"; diag <"$s/index.json"
  fi
  if kiln_as "$mode" "$s" rmi -f "${id#sha256:}" >"$mw/out" 2>&1 &&
     ! kiln_as "$mode" "$s" images -q --no-trunc 2>&1 | grep -q "${id#sha256:}" &&
     kiln_as "$mode" "$s" images 2>&1 | grep -q localhost/busybox; then
    tap_ok "$mode: rmi -f ID then removes it; nothing with that ID is left"
  else
    tap_not_ok "$mode: rmi -f ID after the load"; diag <"$mw/out"; kiln_as "$mode" "$s" images 2>&1 | diag
  fi

  # ---- 6. rmi ID that matches several images (a store from an older kiln
  # that holds the same image twice) is refused with the candidates listed
  s="$mw/s-ambig"
  import_busybox "$mode" "$s" "$mw"
  id=$(kiln_as "$mode" "$s" images -q --no-trunc 2>/dev/null | head -1)
  python3 - "$s" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
idx = json.load(open(f"{root}/index.json"))
d = idx["manifests"][0]
m = json.load(open(f"{root}/blobs/sha256/{d['digest'][7:]}"))
m.setdefault("annotations", {})["test"] = "second copy"
body = json.dumps(m, separators=(",", ":"), sort_keys=True).encode()
h = hashlib.sha256(body).hexdigest()
p = f"{root}/blobs/sha256/{h}"
open(p, "wb").write(body)
st = os.stat(f"{root}/index.json")
os.chown(p, st.st_uid, st.st_gid)
idx["manifests"].append({"mediaType": d["mediaType"], "digest": "sha256:" + h, "size": len(body)})
open(f"{root}/index.json", "w").write(json.dumps(idx))
PY
  kiln_as "$mode" "$s" rmi "${id:7:12}" >"$mw/out" 2>"$mw/err"; rc=$?
  if [ $rc = 2 ] && grep -q "matches 2 images" "$mw/err" && [ "$(entries "$s")" = 2 ]; then
    tap_ok "$mode: rmi of an ID with two matches is refused, listing both (exit 2)"
  else
    tap_not_ok "$mode: rmi of an ambiguous ID (rc $rc)"; diag <"$mw/out"; diag <"$mw/err"
  fi
  if kiln_as "$mode" "$s" rmi -f "${id:7:12}" >"$mw/out" 2>&1 && [ "$(entries "$s")" = 0 ] &&
     kiln_as "$mode" "$s" prune --check >/dev/null 2>&1; then
    tap_ok "$mode: rmi -f of that ID removes both"
  else
    tap_not_ok "$mode: rmi -f of an ambiguous ID"; diag <"$mw/out"
  fi

  rm -rf "$mw"
done
tap_done
