#!/usr/bin/env bash
# Pod start-up cost (issue [2.8]): `pod create` + 3 containers started with
# `run -d --pod` against 3 plain `run -d` on the same container network (the
# pod's infra is on one too), interleaved rounds, median wall time of each.
# The target: the pod within 1.5x of the plain containers.
#
#   bench/pod.sh [KILN_BIN] [N]
#
# Runs as the invoking user (as root, `runuser -u kiln-test -- bench/pod.sh
# /abs/path/kiln` gives the rootless figure). Each round removes what it
# made (not timed). Needs busybox (busybox-static).
set -eu
KILN=${1:-${KILN_BIN:-$(dirname "$0")/../build/src/cli/kiln}}
N=${2:-10}
BB=$(command -v busybox) || { echo "busybox not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/kiln-bench-pod.XXXXXX)
export KILN_ROOT="$work/store"
cleanup() {
  "$KILN" pod rm -f -a >/dev/null 2>&1 || true
  "$KILN" rm -f -a >/dev/null 2>&1 || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,tmp,proc,dev,sys}
cp "$BB" "$root/bin/busybox"
for a in sh true sleep; do ln -s busybox "$root/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" .
"$KILN" import "$work/rootfs.tar" benchbox >/dev/null
"$KILN" run --rm --network none benchbox true  # warm: unpack the layer once
"$KILN" pod create --name warm >/dev/null && "$KILN" pod rm -f warm >/dev/null  # the pause image
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

us() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000)); }
plain() { for i in 1 2 3; do "$KILN" run -d --network podman --name "p$i" benchbox sleep 300 || return 1; done; }
inpod() {
  "$KILN" pod create --name bp >/dev/null || return 1
  for i in 1 2 3; do "$KILN" run -d --pod bp --name "m$i" benchbox sleep 300 || return 1; done
}
a=(); b=()
for _ in $(seq "$N"); do
  a+=("$(us plain)"); "$KILN" rm -f -t 0 p1 p2 p3 >/dev/null 2>&1 || "$KILN" rm -f p1 p2 p3 >/dev/null 2>&1
  b+=("$(us inpod)"); "$KILN" pod rm -f bp >/dev/null 2>&1
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(median "${a[@]}"); mb=$(median "${b[@]}")
printf '3 x run -d --network podman          median %7.1f ms\n' "$(echo "$ma / 1000" | bc -l)"
printf 'pod create + 3 x run -d --pod         median %7.1f ms  (%.2fx)\n' "$(echo "$mb / 1000" | bc -l)" "$(echo "$mb / $ma" | bc -l)"
echo "N=$N, load before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
