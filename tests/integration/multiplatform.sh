#!/usr/bin/env bash
# Multi-platform builds (issue 8, docs/multiplatform.md): one build for
# linux/amd64 and linux/arm64 gives one image index; RUN steps of arm64 run
# under qemu-user-static (binfmt_misc, F flag); a $BUILDPLATFORM builder
# stage runs once, natively; the index pushes to a loopback registry as an
# index of two manifests; kiln run/pull --platform select from it; a
# platform without an emulator fails before the build starts; kiln manifest
# create/add/remove/inspect/push round trip. As the test user and as root.
set -u
. "$(dirname "$0")/lib.sh"

if [ "$(dpkg --print-architecture 2>/dev/null)" != amd64 ]; then
  tap_skip "this test expects an amd64 host (it builds linux/amd64 natively and linux/arm64 emulated)"; tap_done; exit
fi
if ! ensure_arm64_handler; then
  tap_skip "no arm64 binfmt_misc handler with the F flag is registered and none can be registered (apt-get install qemu-user-static binfmt-support)"
  tap_done; exit
fi
if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then
  tap_skip "docker-registry and skopeo are needed (Debian packages docker-registry, skopeo)"; tap_done; exit
fi

shared=$(mktemp -d /tmp/kiln-mp.XXXXXX)
chmod 755 "$shared"
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$shared"; }
trap cleanup EXIT

# The two busybox bases (the arm64 one from Debian's busybox-static:arm64).
"$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$shared/bb-amd64.tar" >/dev/null || {
  tap_not_ok "make the amd64 busybox rootfs"; tap_done; exit; }
if ! "$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" --arch arm64 "$shared/bb-arm64.tar" 2>"$shared/bb.err" >/dev/null; then
  tap_skip "Debian's busybox-static:arm64 cannot be obtained: $(cat "$shared/bb.err")"; tap_done; exit
fi
chmod 644 "$shared"/bb-*.tar

start_registry "$shared" || { tap_not_ok "start docker-registry"; diag <"$shared/registry.log"; tap_done; exit; }

mkdir -p "$shared/ctx"
cat >"$shared/ctx/Containerfile" <<'CF'
FROM --platform=$BUILDPLATFORM busybox AS builder
RUN echo "built on $(uname -m)" > /msg
FROM busybox
COPY --from=builder /msg /msg
RUN uname -m > /arch
CMD ["cat", "/arch"]
CF
mkdir -p "$shared/all" "$shared/single" "$shared/none" "$shared/subset" "$shared/remote"
printf 'FROM busybox\nRUN uname -m > /arch\n' >"$shared/all/Containerfile"
printf 'FROM busybox-amd64\nRUN true\n' >"$shared/single/Containerfile"
printf 'FROM only-amd AS a\nFROM only-arm\nCOPY --from=a /bin/sh /x\n' >"$shared/none/Containerfile"
printf 'FROM only-amd AS a\nFROM busybox\nCOPY --from=a /bin/sh /x\n' >"$shared/subset/Containerfile"
chmod -R a+rX "$shared/ctx" "$shared/all" "$shared/single" "$shared/none" "$shared/subset" "$shared/remote"

# check_archive ARCHIVE: "linux/amd64=x86_64 linux/arm64=aarch64" from the
# index of an oci-archive, reading /arch out of each platform's layers.
check_archive() {
  python3 - "$1" <<'PY'
import io, json, sys, tarfile
outer = tarfile.open(sys.argv[1])
def blob(d):
    a, h = d.split(":", 1)
    return outer.extractfile(f"blobs/{a}/{h}").read()
top = json.loads(outer.extractfile("index.json").read())["manifests"][0]
index = json.loads(blob(top["digest"]))
out = []
for d in index["manifests"]:
    m = json.loads(blob(d["digest"]))
    arch = "?"
    for l in m["layers"]:
        t = tarfile.open(fileobj=io.BytesIO(blob(l["digest"])))
        for name in ("arch", "./arch"):
            try:
                arch = t.extractfile(name).read().decode().strip()
            except KeyError:
                pass
    p = d.get("platform", {})
    out.append(f'{p.get("os")}/{p.get("architecture")}={arch}')
print(" ".join(sorted(out)))
PY
}

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store=$work/store
  k() { kiln_as "$mode" "$store" "$@"; }

  # Bases: one image per architecture, joined into the index "busybox".
  k import --platform linux/amd64 "$shared/bb-amd64.tar" busybox-amd64 >/dev/null &&
    k import --platform linux/arm64 "$shared/bb-arm64.tar" busybox-arm64 >/dev/null || {
    tap_not_ok "$mode: import the busybox bases"; continue; }
  if k manifest create busybox busybox-amd64 busybox-arm64 >/dev/null 2>"$work/err" &&
     [ "$(k manifest inspect busybox | jq -r '[.manifests[].platform.architecture] | sort | join(",")')" = amd64,arm64 ]; then
    tap_ok "$mode: manifest create busybox from the two single-platform bases"
  else
    tap_not_ok "$mode: manifest create busybox"; diag <"$work/err"; continue
  fi

  # The two-platform build.
  start=$(date +%s.%N)
  if k build --platform linux/amd64,linux/arm64 -t app --progress json "$shared/ctx" >"$work/id" 2>"$work/progress"; then
    tap_ok "$mode: build --platform linux/amd64,linux/arm64 ($(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s)"
  else
    tap_not_ok "$mode: two-platform build failed"; diag <"$work/progress"; continue
  fi
  # The builder's RUN ran once (natively), and each platform's build found it cached.
  done_n=$(grep '"status":"done"' "$work/progress" | grep -c 'built on' || true)
  keys=$(grep 'built on' "$work/progress" | grep -o '"cache_key":"[^"]*"' | sort -u | wc -l)
  if [ "$done_n" -eq 1 ] && [ "$keys" -eq 1 ]; then
    tap_ok "$mode: the \$BUILDPLATFORM builder stage ran once; every platform used its cache key"
  else
    tap_not_ok "$mode: builder RUN done $done_n times with $keys distinct keys"; grep 'built on' "$work/progress" | diag
  fi
  if k images | grep -q '^localhost/app '; then tap_ok "$mode: kiln images lists app"
  else tap_not_ok "$mode: kiln images has no app"; k images | diag; fi
  n=$(k inspect app | jq '.[0].Manifests | length')
  if [ "$n" = 2 ]; then tap_ok "$mode: kiln inspect app shows an index of 2 manifests"
  else tap_not_ok "$mode: kiln inspect app: $n manifests"; k inspect app | diag; fi

  # kiln run --platform selects from the local index; without it, the host's.
  a64=$(k run --rm --platform linux/arm64 app uname -m 2>"$work/err")
  [ "$a64" = aarch64 ] && tap_ok "$mode: run --platform linux/arm64 app uname -m prints aarch64" ||
    { tap_not_ok "$mode: run --platform linux/arm64 uname -m gave '$a64'"; diag <"$work/err"; }
  arch_arm=$(k run --rm --platform linux/arm64 app cat /arch /msg 2>"$work/err" | tr '\n' ' ')
  arch_amd=$(k run --rm --platform linux/amd64 app cat /arch /msg 2>>"$work/err" | tr '\n' ' ')
  arch_def=$(k run --rm app 2>>"$work/err")
  if [ "$arch_arm" = "aarch64 built on x86_64 " ] && [ "$arch_amd" = "x86_64 built on x86_64 " ] && [ "$arch_def" = x86_64 ]; then
    tap_ok "$mode: /arch is aarch64 / x86_64, /msg built natively, default platform the host's"
  else
    tap_not_ok "$mode: arm64 '$arch_arm', amd64 '$arch_amd', default '$arch_def'"; diag <"$work/err"
  fi

  # save writes the whole index.
  if k save --format oci-archive -o "$work/app.tar" app 2>"$work/err" &&
     [ "$(check_archive "$work/app.tar")" = "linux/amd64=x86_64 linux/arm64=aarch64" ]; then
    tap_ok "$mode: kiln save writes the index with both platforms' images"
  else
    tap_not_ok "$mode: save: $(check_archive "$work/app.tar" 2>&1)"; diag <"$work/err"
  fi

  # push: an index of two manifests with the right platforms.
  dest=$REG/mp-$mode/app:1
  if k push -q app "docker://$dest" 2>"$work/err"; then
    raw=$(skopeo inspect --raw --tls-verify=false "docker://$dest")
    got=$(echo "$raw" | jq -r '.mediaType + " " + ([.manifests[] | .platform.os + "/" + .platform.architecture] | sort | join(","))')
    if [ "$got" = "application/vnd.oci.image.index.v1+json linux/amd64,linux/arm64" ]; then
      tap_ok "$mode: pushed; skopeo inspect --raw shows an index of linux/amd64 and linux/arm64"
    else
      tap_not_ok "$mode: registry has: $got"; echo "$raw" | diag
    fi
  else
    tap_not_ok "$mode: push app"; diag <"$work/err"
  fi

  # pull --platform from the registry's index, into an empty store.
  store2=$work/store2
  if kiln_as "$mode" "$store2" pull -q --platform linux/arm64 "$dest" >/dev/null 2>"$work/err" &&
     [ "$(kiln_as "$mode" "$store2" run --rm "$dest" uname -m 2>>"$work/err")" = aarch64 ]; then
    tap_ok "$mode: pull --platform linux/arm64 from the registry; the image runs as aarch64"
  else
    tap_not_ok "$mode: pull --platform linux/arm64"; diag <"$work/err"
  fi
  # --all-platforms (as podman build): every platform all the bases' indexes have.
  if k build -q --all-platforms -t allp "$shared/all" >/dev/null 2>"$work/err" &&
     [ "$(k inspect allp | jq -r '[.[0].Manifests[].platform.architecture] | sort | join(",")')" = amd64,arm64 ] &&
     [ "$(k run --rm --platform linux/arm64 allp cat /arch 2>>"$work/err")" = aarch64 ]; then
    tap_ok "$mode: build --all-platforms FROM busybox (an index of amd64, arm64): an index of both"
  else
    tap_not_ok "$mode: build --all-platforms"; diag <"$work/err"; k inspect allp 2>&1 | diag
  fi
  k build --all-platforms -t nope "$shared/single" >/dev/null 2>"$work/err"; rc=$?
  check_refused "$mode: --all-platforms FROM a single-platform image: exit 2 naming it" $rc \
    "--all-platforms: base image busybox-amd64 is a single-platform image" "$work/err"
  k manifest create only-amd busybox-amd64 >/dev/null 2>&1; k manifest create only-arm busybox-arm64 >/dev/null 2>&1
  k build --all-platforms -t nope "$shared/none" >/dev/null 2>"$work/err"; rc=$?
  check_refused "$mode: --all-platforms with bases of no common platform: exit 2 naming them" $rc \
    "base images only-amd, only-arm have no platform in common" "$work/err"
  k build --platform linux/amd64 --all-platforms -t nope "$shared/all" >/dev/null 2>"$work/err"; rc=$?
  check_refused "$mode: --all-platforms with --platform: exit 2" $rc "--all-platforms and --platform" "$work/err"
  if k build --all-platforms -t subset "$shared/subset" >/dev/null 2>"$work/err" &&
     grep -q -- "--all-platforms: building for linux/amd64\$" "$work/err" &&
     [ "$(k run --rm subset uname -m 2>>"$work/err")" = x86_64 ]; then
    tap_ok "$mode: --all-platforms with bases amd64,arm64 and amd64: builds linux/amd64 only"
  else
    tap_not_ok "$mode: --all-platforms common subset"; diag <"$work/err"
  fi
  # A base only in the registry: its index there, the build pulls each platform.
  printf 'FROM %s\nRUN uname -m >/was\n' "$dest" | as_mode "$mode" sh -c "cat >'$work/remote.cf'"
  if kiln_as "$mode" "$work/store4" build -q --tls-verify=false --all-platforms -f "$work/remote.cf" -t fromreg \
       "$shared/remote" >/dev/null 2>"$work/err" &&
     [ "$(kiln_as "$mode" "$work/store4" inspect fromreg | jq '.[0].Manifests | length')" = 2 ] &&
     [ "$(kiln_as "$mode" "$work/store4" run --rm --platform linux/arm64 fromreg cat /was 2>>"$work/err")" = aarch64 ]; then
    tap_ok "$mode: --all-platforms FROM a registry index not in the store: both platforms built"
  else
    tap_not_ok "$mode: --all-platforms of a registry base"; diag <"$work/err"
  fi

  # run --platform of a remote index pulls that platform.
  if [ "$(kiln_as "$mode" "$work/store3" run --rm --platform linux/arm64 "$dest" cat /arch 2>"$work/err")" = aarch64 ]; then
    tap_ok "$mode: run --platform linux/arm64 of a registry index pulls and runs the arm64 image"
  else
    tap_not_ok "$mode: run --platform of a registry index"; diag <"$work/err"
  fi

  # Fail fast: no handler for the platform -> exit 2 before any step.
  mkdir -p "$work/nobinfmt"
  echo enabled >"$work/nobinfmt/status"
  chmod -R a+rX "$work/nobinfmt"
  as_mode "$mode" env KILN_ROOT="$store" KILN_BINFMT_MISC_DIR="$work/nobinfmt" "$KILN_BIN" build --no-cache \
    --platform linux/amd64,linux/arm64 --progress json -t nope "$shared/ctx" >/dev/null 2>"$work/err"
  rc=$?
  if [ "$rc" = 2 ] && grep -q 'linux/arm64: this machine cannot run arm64 binaries: install qemu-user-static (Debian: apt-get install qemu-user-static binfmt-support) or drop RUN steps for that platform' "$work/err" &&
     ! grep -q '"status"' "$work/err"; then
    tap_ok "$mode: no arm64 handler: exit 2 with the message, before any step ran"
  else
    tap_not_ok "$mode: no-handler build: exit $rc"; diag <"$work/err"
  fi
  # A handler without the F flag cannot start inside the build's chroot.
  mkdir -p "$work/nof"
  echo enabled >"$work/nof/status"
  printf 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: P\noffset 0\nmagic %s\nmask ffffffffffffff00fffffffffffffffffeffffff\n' \
    "$ARM64_MAGIC" >"$work/nof/qemu-aarch64"
  chmod -R a+rX "$work/nof"
  as_mode "$mode" env KILN_ROOT="$store" KILN_BINFMT_MISC_DIR="$work/nof" "$KILN_BIN" build \
    --platform linux/arm64 -t nope "$shared/ctx" >/dev/null 2>"$work/err"
  rc=$?
  if [ "$rc" = 2 ] && grep -q 'linux/arm64: this machine cannot run arm64 binaries: the binfmt_misc handler .*qemu-aarch64 lacks the F flag' "$work/err" &&
     ! as_mode "$mode" env KILN_ROOT="$store" KILN_BINFMT_MISC_DIR="$work/nof" "$KILN_BIN" info | grep -q 'linux/arm64'; then
    tap_ok "$mode: a handler without the F flag: exit 2 naming it; kiln info does not list arm64"
  else
    tap_not_ok "$mode: handler without F: exit $rc"; diag <"$work/err"
  fi
  k build --platform linux/sparc64 -t nope "$shared/ctx" >/dev/null 2>"$work/err"
  rc=$?
  if [ "$rc" = 2 ] && grep -q 'linux/sparc64: this machine cannot run sparc64 binaries' "$work/err"; then
    tap_ok "$mode: linux/sparc64 (no emulator known): exit 2 with the message"
  else
    tap_not_ok "$mode: sparc64 build: exit $rc"; diag <"$work/err"
  fi
  if k info | grep -q 'linux/arm64 (emulated'; then tap_ok "$mode: kiln info lists linux/arm64 as emulated"
  else tap_not_ok "$mode: kiln info does not list linux/arm64"; k info | diag; fi

  # manifest create/add/remove/inspect/push round trip.
  ok=1
  k manifest create list2 >/dev/null 2>"$work/err" || ok=0
  k manifest add list2 busybox-amd64 >/dev/null 2>>"$work/err" || ok=0
  k manifest add --arch arm64 --variant v8 --annotation org.example.note=arm list2 busybox-arm64 >/dev/null 2>>"$work/err" || ok=0
  insp=$(k manifest inspect list2 2>>"$work/err")
  [ "$(echo "$insp" | jq -r '[.manifests[] | .platform.architecture + ":" + (.platform.variant // "")] | join(",")')" = "amd64:,arm64:v8" ] || ok=0
  [ "$(echo "$insp" | jq -r '.manifests[1].annotations["org.example.note"]')" = arm ] || ok=0
  amd_digest=$(echo "$insp" | jq -r '.manifests[0].digest')
  k manifest remove list2 "$amd_digest" >/dev/null 2>>"$work/err" || ok=0
  [ "$(k manifest inspect list2 | jq '.manifests | length')" = 1 ] || ok=0
  k manifest add list2 busybox-amd64 >/dev/null 2>>"$work/err" || ok=0
  k manifest create list2 >/dev/null 2>&1 && ok=0   # exists: refused without --amend
  k manifest push -q list2 "docker://$REG/mp-$mode/list2:1" 2>>"$work/err" || ok=0
  remote=$(skopeo inspect --raw --tls-verify=false "docker://$REG/mp-$mode/list2:1" 2>>"$work/err" |
    jq -r '[.manifests[].platform.architecture] | sort | join(",")')
  [ "$remote" = amd64,arm64 ] || ok=0
  [ "$(k manifest inspect --tls-verify=false "docker://$REG/mp-$mode/list2:1" | jq '.manifests | length')" = 2 ] || ok=0
  if [ $ok = 1 ]; then tap_ok "$mode: manifest create/add (with overrides)/remove/inspect/push round trip"
  else tap_not_ok "$mode: manifest round trip (remote: $remote)"; diag <"$work/err"; fi

  # --format docker: a Docker manifest list.
  if k build -q --format docker --platform linux/amd64,linux/arm64 -t app-docker "$shared/ctx" >/dev/null 2>"$work/err" &&
     [ "$(k inspect app-docker | jq -r '.[0].MediaType')" = application/vnd.docker.distribution.manifest.list.v2+json ]; then
    tap_ok "$mode: --format docker stores a Docker manifest list"
  else
    tap_not_ok "$mode: --format docker"; diag <"$work/err"
  fi
  rm -rf "$work" 2>/dev/null || as_mode "$mode" rm -rf "$work" 2>/dev/null || true
done
tap_done
