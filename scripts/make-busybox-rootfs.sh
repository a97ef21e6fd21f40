#!/bin/sh
# Builds a minimal busybox rootfs tarball from Debian's busybox-static, for
# `kiln import FILE busybox` (the offline demo base, docs/images.md):
#   bin/busybox + one symlink per applet (`busybox --list`) in bin/,
#   etc/passwd and etc/group with root and nobody, root/ (0700), tmp/ (1777).
# Owners are 0:0 and every mtime is $SOURCE_DATE_EPOCH (default 0), entries
# sorted, so the tarball -- and the image kiln makes from it -- is
# reproducible.
# Usage: scripts/make-busybox-rootfs.sh [--arch ARCH] OUTPUT.tar [BUSYBOX]
#   --arch ARCH (a Debian architecture: arm64, armhf, riscv64, ...; not the
#   host's): the busybox comes from Debian's busybox-static:ARCH package,
#   downloaded once with `apt-get download` into
#   ${KILN_BUSYBOX_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kiln}/busybox-ARCH/
#   (as root the script runs `dpkg --add-architecture ARCH && apt-get update`
#   when apt does not know the architecture yet). Exit 3 when it cannot be
#   obtained. The applet links are taken from the host's busybox --list.
set -eu
arch=
if [ "${1:-}" = --arch ]; then
  arch=${2:?usage: make-busybox-rootfs.sh [--arch ARCH] OUTPUT.tar [BUSYBOX]}
  shift 2
fi
out=${1:?usage: make-busybox-rootfs.sh [--arch ARCH] OUTPUT.tar [BUSYBOX]}
busybox=${2:-/bin/busybox}
epoch=${SOURCE_DATE_EPOCH:-0}
host_arch=$(dpkg --print-architecture 2>/dev/null || echo unknown)
[ "$arch" = "$host_arch" ] && arch=
list_busybox=$busybox

if [ -n "$arch" ] && [ -z "${2:-}" ]; then
  cache=${KILN_BUSYBOX_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/kiln}/busybox-$arch
  if [ ! -x "$cache/bin/busybox" ]; then
    mkdir -p "$cache"
    dl=$(mktemp -d "${TMPDIR:-/tmp}/busybox-deb.XXXXXX")
    if ! (cd "$dl" && apt-get download "busybox-static:$arch") >/dev/null 2>&1; then
      if [ "$(id -u)" -eq 0 ]; then
        dpkg --add-architecture "$arch" && apt-get update >/dev/null 2>&1 || true
      fi
      if ! (cd "$dl" && apt-get download "busybox-static:$arch") >/dev/null 2>&1; then
        rm -rf "$dl"
        echo "make-busybox-rootfs.sh: cannot download busybox-static:$arch (as root: dpkg --add-architecture $arch && apt-get update)" >&2
        exit 3
      fi
    fi
    dpkg-deb -x "$dl"/busybox-static_*.deb "$dl/x"
    mkdir -p "$cache/bin"
    cp "$dl/x/bin/busybox" "$cache/bin/busybox.tmp"
    chmod 0755 "$cache/bin/busybox.tmp"
    mv "$cache/bin/busybox.tmp" "$cache/bin/busybox"
    rm -rf "$dl"
  fi
  busybox=$cache/bin/busybox
  list_busybox=/bin/busybox
  [ -x "$list_busybox" ] || list_busybox=$busybox
fi

if [ ! -x "$busybox" ]; then
  echo "make-busybox-rootfs.sh: $busybox not found (apt-get install busybox-static)" >&2
  exit 1
fi
if [ -z "$arch" ] && ldd "$busybox" >/dev/null 2>&1; then
  echo "make-busybox-rootfs.sh: $busybox is dynamically linked; use busybox-static" >&2
  exit 1
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/busybox-rootfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
root=$stage/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/usr/bin" "$root/dev" "$root/proc" "$root/sys"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$list_busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -s busybox "$root/bin/$applet"
done
# Scripts that start with #!/usr/bin/env.
ln -s ../../bin/busybox "$root/usr/bin/env"
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0755 "$root" "$root/bin" "$root/etc" "$root/usr" "$root/usr/bin" "$root/dev" "$root/proc" "$root/sys"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

tar --sort=name --format=gnu --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
