#!/usr/bin/env bash
# Container start-up cost: `kiln run --rm IMAGE true` beside bubblewrap on an
# unpacked copy of the same rootfs (the floor: no store, no overlay, no
# record), median of N runs each, in the same run.
#
#   bench/run.sh [KILN_BIN] [N]
#
# Runs as the invoking user (rootless when not root). Prints one line per
# tool and the ratio. Needs busybox (busybox-static) and bwrap.
set -eu
KILN=${1:-${KILN_BIN:-$(dirname "$0")/../build/src/cli/kiln}}
N=${2:-20}
command -v bwrap >/dev/null || { echo "bwrap not installed" >&2; exit 1; }
BB=$(command -v busybox) || { echo "busybox not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/kiln-bench-run.XXXXXX)
trap 'rm -rf "$work" 2>/dev/null || true' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,tmp,proc,dev,sys}
cp "$BB" "$root/bin/busybox"
for a in sh true echo; do ln -s busybox "$root/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" .

export KILN_ROOT="$work/store"
"$KILN" import "$work/rootfs.tar" benchbox >/dev/null
"$KILN" run --rm --network none benchbox true  # warm: unpack the layer once

# median_ms CMD...: runs CMD N times, prints the median wall time in ms
median_ms() {
  local i t0 t1
  : >"$work/times"
  for i in $(seq 1 "$N"); do
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000)) >>"$work/times"
  done
  sort -n "$work/times" | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f\n", m / 1000}'
}

bwrap_ms=$(median_ms bwrap --unshare-all --bind "$root" / --proc /proc --dev /dev --tmpfs /tmp /bin/true)
kiln_none_ms=$(median_ms "$KILN" run --rm --network none benchbox true)
kiln_ms=$(median_ms "$KILN" run --rm benchbox true)
echo "bwrap --unshare-all (unpacked rootfs)    median of $N: ${bwrap_ms} ms"
echo "kiln run --rm --network none IMAGE true  median of $N: ${kiln_none_ms} ms  ($(awk -v a="$kiln_none_ms" -v b="$bwrap_ms" 'BEGIN{printf "%.1f", a/b}')x bwrap)"
echo "kiln run --rm IMAGE true (private net)   median of $N: ${kiln_ms} ms  ($(awk -v a="$kiln_ms" -v b="$bwrap_ms" 'BEGIN{printf "%.1f", a/b}')x bwrap)"
