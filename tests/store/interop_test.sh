#!/usr/bin/env bash
# Interop of kiln's image formats with the real tools (TAP): skopeo and umoci
# read what kiln saves/pushes; kiln loads what skopeo writes, with identical
# layer digests. Runs kiln as $KILN_TEST_USER (rootless) and as root.
set -u
KILN_BIN=${KILN_BIN:?KILN_BIN not set}
TOP=${KILN_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $*"; }
not_ok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }
skip() { N=$((N + 1)); echo "ok $N - $* # SKIP"; }
check() {  # check DESCRIPTION CMD...
  local d=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$d"; else not_ok "$d"; echo "$out" | sed 's/^/# /' | tail -15; fi
}

modes() {
  if [ "$(id -u)" -eq 0 ]; then
    if [ -n "${KILN_TEST_USER:-}" ] && id "$KILN_TEST_USER" >/dev/null 2>&1; then echo "user root"; else echo root; fi
  else
    echo user
  fi
}
as() {  # as MODE CMD...
  local mode=$1; shift
  if [ "$mode" = user ] && [ "$(id -u)" -eq 0 ]; then
    runuser -u "$KILN_TEST_USER" -- env HOME="$(getent passwd "$KILN_TEST_USER" | cut -d: -f6)" \
      XDG_RUNTIME_DIR= TMPDIR=/tmp "$@"
  else
    "$@"
  fi
}

for tool in skopeo umoci jq; do
  if ! command -v $tool >/dev/null; then
    echo "1..0 # SKIP $tool is not installed"
    exit 0
  fi
done

for mode in $(modes); do
  W=$(mktemp -d /tmp/kiln-interop.XXXXXX)
  chmod 755 "$W"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$W"
  k() { as "$mode" env KILN_ROOT="$W/store" "$KILN_BIN" "$@"; }
  k2() { as "$mode" env KILN_ROOT="$W/store2" "$KILN_BIN" "$@"; }
  t() { as "$mode" "$@"; }

  "$TOP/scripts/make-busybox-rootfs.sh" "$W/busybox.tar" && chmod 644 "$W/busybox.tar"
  id=$(k import --change 'CMD ["/bin/sh"]' "$W/busybox.tar" busybox)
  if [ ${#id} -eq 64 ]; then ok "[$mode] import prints the image ID"; else not_ok "[$mode] import: '$id'"; fi
  layer=$(k inspect --format '{{json .Layers}}' busybox | jq -r '.[0].Digest')
  diffid=$(k inspect --format '{{json .RootFS.Layers}}' busybox | jq -r '.[0]')
  want_diff="sha256:$(sha256sum "$W/busybox.tar" | cut -d' ' -f1)"
  if [ "$diffid" = "$want_diff" ]; then ok "[$mode] diff_id is the sha256 of the tarball"; else not_ok "[$mode] diff_id $diffid != $want_diff"; fi
  if k images | grep -qE "^localhost/busybox +latest +${id:0:12}"; then ok "[$mode] images lists localhost/busybox"; else not_ok "[$mode] images"; k images | sed 's/^/# /'; fi

  # --- kiln -> skopeo
  k save --format oci-archive -o "$W/oci.tar" busybox
  got=$(t skopeo inspect "oci-archive:$W/oci.tar" | jq -r '.Layers[0]')
  if [ "$got" = "$layer" ]; then ok "[$mode] skopeo inspect oci-archive: same layer"; else not_ok "[$mode] skopeo inspect oci-archive: '$got' != '$layer'"; fi
  check "[$mode] skopeo copy oci-archive -> oci" t skopeo copy -q "oci-archive:$W/oci.tar" "oci:$W/skopeo-layout:bb"
  k save --format docker-archive -o "$W/docker.tar" busybox
  got=$(t skopeo inspect "docker-archive:$W/docker.tar" | jq -r '.Layers[0]')
  if [ "$got" = "$diffid" ]; then ok "[$mode] skopeo inspect docker-archive: same (uncompressed) layer"; else not_ok "[$mode] skopeo inspect docker-archive: '$got' != '$diffid'"; fi
  check "[$mode] skopeo copy docker-archive -> oci-archive" t skopeo copy -q "docker-archive:$W/docker.tar" "oci-archive:$W/from-docker.tar"
  got=$(t skopeo inspect --config "docker-archive:$W/docker.tar" | jq -r '.config.Cmd[0]')
  if [ "$got" = /bin/sh ]; then ok "[$mode] docker-archive config readable by skopeo"; else not_ok "[$mode] config Cmd '$got'"; fi

  # --- kiln -> umoci
  check "[$mode] push oci:DIR:TAG" k push busybox "oci:$W/layout:bb"
  if t umoci unpack --rootless --image "$W/layout:bb" "$W/bundle" >"$W/umoci.log" 2>&1; then
    if [ -x "$W/bundle/rootfs/bin/busybox" ] && [ "$(readlink "$W/bundle/rootfs/bin/sh")" = busybox ] &&
       grep -q '^nobody:' "$W/bundle/rootfs/etc/passwd" && [ "$(stat -c %a "$W/bundle/rootfs/tmp")" = 1777 ]; then
      ok "[$mode] umoci unpack --rootless gives the expected tree"
    else
      not_ok "[$mode] umoci tree differs"; ls -la "$W/bundle/rootfs" "$W/bundle/rootfs/bin/sh" 2>&1 | sed 's/^/# /'
    fi
  else
    not_ok "[$mode] umoci unpack"; sed 's/^/# /' "$W/umoci.log"
  fi

  # --- skopeo -> kiln (a fresh store): identical layer digests
  check "[$mode] skopeo copy oci-archive -> oci-archive" t skopeo copy -q "oci-archive:$W/oci.tar" "oci-archive:$W/skopeo.tar"
  out=$(k2 load -i "$W/skopeo.tar" 2>&1)
  loaded=$(echo "$out" | sed -n 's/^Loaded image: //p' | head -1)
  got=$(k2 inspect --format '{{json .Layers}}' "$loaded" 2>&1 | jq -r '.[0].Digest')
  if [ "$got" = "$layer" ]; then ok "[$mode] kiln load of skopeo's oci-archive: identical layer"; else not_ok "[$mode] load skopeo oci-archive: '$got' ($out)"; fi
  got=$(k2 pull -q "oci:$W/skopeo-layout:bb" 2>&1)
  if [ "$got" = "$id" ]; then ok "[$mode] kiln pull oci: of skopeo's layout: same image ID"; else not_ok "[$mode] pull skopeo layout: '$got'"; fi
  out=$(k2 load -i "$W/from-docker.tar" 2>&1)
  loaded=$(echo "$out" | sed -n 's/^Loaded image: //p' | head -1)
  got=$(k2 inspect --format '{{json .RootFS.Layers}}' "$loaded" 2>&1 | jq -r '.[0]')
  if [ "$got" = "$diffid" ]; then ok "[$mode] kiln load of skopeo-converted docker-archive: same diff_id"; else not_ok "[$mode] '$got' ($out)"; fi
  out=$(k2 load -i "$W/docker.tar" 2>&1)
  got=$(k2 inspect --format '{{.Id}}' busybox 2>&1)
  if [ "$got" = "$id" ]; then ok "[$mode] docker-archive round trip keeps the image ID and name"; else not_ok "[$mode] '$got' ($out)"; fi

  # --- exit codes and messages
  k inspect nope >/dev/null 2>"$W/err"; rc=$?
  if [ $rc -eq 125 ] && grep -q 'image not known: nope' "$W/err"; then ok "[$mode] unknown image: exit 125 (podman's)"; else not_ok "[$mode] unknown image rc=$rc"; fi
  k tag busybox 'Bad/Name' >/dev/null 2>"$W/err"; rc=$?
  if [ $rc -eq 2 ] && grep -q 'invalid reference "Bad/Name"' "$W/err"; then ok "[$mode] bad reference: exit 2"; else not_ok "[$mode] bad reference rc=$rc"; fi
  k pull containers-storage:x >/dev/null 2>&1; rc=$?
  if [ $rc -eq 2 ]; then ok "[$mode] unsupported transport: exit 2"; else not_ok "[$mode] transport rc=$rc"; fi
  k tag busybox other:1 && k rmi localhost/other:1 >/dev/null
  check "[$mode] tag then rmi of the name keeps the image" k inspect busybox

  # --- crash through the binary, then the store check
  as "$mode" env KILN_ROOT="$W/store" KILN_CRASH_AT=9 "$KILN_BIN" import "$W/busybox.tar" crashed >/dev/null 2>&1; rc=$?
  if [ $rc -eq 137 ]; then ok "[$mode] KILN_CRASH_AT kills kiln import"; else not_ok "[$mode] crash rc=$rc"; fi
  check "[$mode] prune --check is clean after the crash" k prune --check
  check "[$mode] prune -f removes leftovers" k prune -f
  rm -rf "$W" 2>/dev/null || as "$mode" rm -rf "$W"
done
echo "1..$N"
[ "$FAILED" -eq 0 ]
