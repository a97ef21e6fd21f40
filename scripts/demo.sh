#!/usr/bin/env bash
# The demo: make the offline busybox base, build testdata/examples/hello and
# run it -- as an unprivileged user when started as root (kiln is rootless).
# Usage: scripts/demo.sh PATH/TO/kiln
set -euo pipefail
KILN=$(readlink -f "$1")
TOP=$(cd "$(dirname "$0")/.." && pwd)

run_as=()
if [ "$(id -u)" -eq 0 ]; then
  u=kiln-demo
  if ! id "$u" >/dev/null 2>&1; then useradd --create-home --shell /bin/bash "$u"; fi
  grep -q "^$u:" /etc/subuid || echo "$u:300000:65536" >>/etc/subuid
  grep -q "^$u:" /etc/subgid || echo "$u:300000:65536" >>/etc/subgid
  run_as=(runuser -u "$u" --)
  echo "==> running kiln as the unprivileged user $u"
fi
work=$(mktemp -d /tmp/kiln-demo.XXXXXX)
chmod 755 "$work"
[ ${#run_as[@]} -eq 0 ] || chown "${run_as[2]}" "$work"
k() { "${run_as[@]}" env KILN_ROOT="$work/store" "$KILN" "$@"; }

echo "==> making the busybox base offline from Debian's busybox-static"
"$TOP/scripts/make-busybox-rootfs.sh" "$work/busybox.tar"
chmod 644 "$work/busybox.tar"
k import "$work/busybox.tar" busybox

echo "==> kiln build -t hello testdata/examples/hello"
k build -t hello "$TOP/testdata/examples/hello"
echo "==> kiln images"
k images
echo "==> kiln run --rm hello"
k run --rm hello
