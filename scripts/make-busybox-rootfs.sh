#!/bin/sh
# Builds a minimal busybox rootfs tarball from Debian's busybox-static, for
# `kiln import FILE busybox` (the offline demo base, docs/images.md):
#   bin/busybox + one symlink per applet (`busybox --list`) in bin/,
#   etc/passwd and etc/group with root and nobody, root/ (0700), tmp/ (1777).
# Owners are 0:0 and every mtime is $SOURCE_DATE_EPOCH (default 0), entries
# sorted, so the tarball -- and the image kiln makes from it -- is
# reproducible.
# Usage: scripts/make-busybox-rootfs.sh OUTPUT.tar [BUSYBOX]
set -eu
out=${1:?usage: make-busybox-rootfs.sh OUTPUT.tar [BUSYBOX]}
busybox=${2:-/bin/busybox}
epoch=${SOURCE_DATE_EPOCH:-0}

if [ ! -x "$busybox" ]; then
  echo "make-busybox-rootfs.sh: $busybox not found (apt-get install busybox-static)" >&2
  exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
  echo "make-busybox-rootfs.sh: $busybox is dynamically linked; use busybox-static" >&2
  exit 1
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/busybox-rootfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
root=$stage/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/usr/bin" "$root/dev" "$root/proc" "$root/sys"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
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
