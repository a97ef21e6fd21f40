#!/usr/bin/env bash
# Container start-up cost: `kiln run --rm IMAGE true` beside bubblewrap on an
# unpacked copy of the same rootfs (the floor: no store, no overlay, no
# record), median of N runs each, in the same run.
#
#   bench/run.sh [KILN_BIN] [N]
#
# Runs as the invoking user (rootless when not root; as root, e.g.
# `runuser -u kiln-test -- bench/run.sh /abs/path/kiln` for the rootless
# figure). Prints one line per tool and the ratio, and the load average (on a
# busy machine the ratio is what counts). Needs busybox (busybox-static) and
# bwrap.
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
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The three commands run interleaved (one of each per round), so that they
# see the same machine load; each gets its median (and minimum) wall time.
. "$(dirname "$0")/lib.sh"  # ms, median_ms
: >"$work/bwrap"; : >"$work/none"; : >"$work/private"
for i in $(seq 1 "$N"); do
  ms bwrap --unshare-all --bind "$root" / --proc /proc --dev /dev --tmpfs /tmp /bin/true >>"$work/bwrap"
  ms "$KILN" run --rm --network none benchbox true >>"$work/none"
  ms "$KILN" run --rm benchbox true >>"$work/private"
done
median() { median_ms "$1" 2; }  # median FILE: in ms
minimum() { sort -n "$1" | head -1 | awk '{printf "%.2f\n", $1 / 1000}'; }
bwrap_ms=$(median "$work/bwrap")
kiln_none_ms=$(median "$work/none")
kiln_ms=$(median "$work/private")
echo "load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bwrap --unshare-all (unpacked rootfs)    median of $N: ${bwrap_ms} ms (min $(minimum "$work/bwrap"))"
echo "kiln run --rm --network none IMAGE true  median of $N: ${kiln_none_ms} ms (min $(minimum "$work/none"))  ($(awk -v a="$kiln_none_ms" -v b="$bwrap_ms" 'BEGIN{printf "%.1f", a/b}')x bwrap)"
echo "kiln run --rm IMAGE true (private net)   median of $N: ${kiln_ms} ms (min $(minimum "$work/private"))  ($(awk -v a="$kiln_ms" -v b="$bwrap_ms" 'BEGIN{printf "%.1f", a/b}')x bwrap)"
