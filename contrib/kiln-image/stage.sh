#!/bin/sh
# stage.sh BUILD_DIR OUT_DIR: fills OUT_DIR/rootfs with what the kiln image
# holds (contrib/kiln-image/Containerfile): kiln and kiln-sandbox from the
# meson build directory, the shared objects ldd lists for kiln and for
# libcurl (dlopen()ed for registry access; skipped when not installed), the
# dynamic loader, CA certificates, /etc/passwd and /etc/group with root, and
# empty /tmp, /var/lib/kiln and /work. Binaries are stripped (kiln's debug
# info is ~300 MB). Then: kiln build -f contrib/kiln-image/Containerfile OUT_DIR
set -eu
build=${1:?usage: stage.sh BUILD_DIR OUT_DIR}
out=${2:?usage: stage.sh BUILD_DIR OUT_DIR}
root=$out/rootfs
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/var/lib/kiln" "$root/work" "$root/tmp"
chmod 1777 "$root/tmp"
objcopy --strip-debug "$build/src/cli/kiln" "$root/usr/local/bin/kiln"
objcopy --strip-debug "$build/src/sandbox/kiln-sandbox" "$root/usr/local/bin/kiln-sandbox"
# Every shared object (and the loader) at the path the loader looks it up.
libs() { ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; }
{
  libs "$build/src/cli/kiln"
  curl=$(ldconfig -p | awk '/libcurl\.so\.4 / && /x86-64|x86_64|aarch64/ {print $NF; exit}')
  if [ -n "$curl" ]; then echo "$curl"; libs "$curl"; fi
} | sort -u | while read -r lib; do
  dest=$root$lib
  mkdir -p "$(dirname "$dest")"
  cp -L "$lib" "$dest"  # the loader's default directories: /lib/<triplet>, /lib64
done
chmod -R u+w "$root"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
echo 'root:x:0:0:root:/root:/usr/local/bin/kiln' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
# Reproducible: every file gets the same mtime (the build's SOURCE_DATE_EPOCH clamps it anyway).
find "$root" -exec touch -h -d @0 {} +
