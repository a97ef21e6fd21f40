#!/usr/bin/env bash
# Sandbox start overhead: `true` in a busybox rootfs, median of N (default 20)
# runs, kiln's sandbox (directory rootfs and overlay with a fresh upper dir)
# beside bubblewrap (`bwrap --unshare-all --ro-bind rootfs / true`) in the
# same run. Run as root and/or as an unprivileged user:
#   bench/sandbox.sh [BUILD_DIR] [N]
#   runuser -u kiln-test -- bench/sandbox.sh build 20
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${2:-20}
BENCH=$BUILD/tests/sandbox/sandbox_bench
[ -x "$BENCH" ] || { echo "build $BENCH first: meson compile -C $BUILD tests/sandbox/sandbox_bench" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "needs /bin/busybox (busybox-static)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-sandbox.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ROOT=$TMP/rootfs
mkdir -p "$ROOT/bin" "$ROOT/tmp" "$ROOT/proc" "$ROOT/dev" "$ROOT/sys" "$ROOT/etc"
cp /bin/busybox "$ROOT/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOT/bin/$a"; done
chmod 755 "$TMP"

echo "sandbox start overhead, median of $N runs of 'true' ($(id -un), $(uname -r))"
"$BENCH" "$ROOT" "$N" | while read -r mode ms; do
  printf '  kiln sandbox (%-7s rootfs)  %6.2f ms\n' "$mode" "$ms"
done

if command -v bwrap >/dev/null; then
  times=()
  bwrap --unshare-all --ro-bind "$ROOT" / true  # warm-up
  for _ in $(seq "$N"); do
    t0=$(date +%s%N)
    bwrap --unshare-all --ro-bind "$ROOT" / true
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}')
  awk -v us="$med" 'BEGIN { printf "  bwrap --unshare-all           %6.2f ms\n", us / 1000 }'
else
  echo "  bwrap: not installed (apt-get install bubblewrap)"
fi
