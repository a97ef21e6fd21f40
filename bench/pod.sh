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
# made (not timed).
set -eu
. "$(dirname "$0")/lib.sh"
KILN=${1:-${KILN_BIN:-$(dirname "$0")/../build/src/cli/kiln}}
N=${2:-10}

bench_store pod
"$KILN" run --rm --network none busybox true  # warm: unpack the layer once
"$KILN" pod create --name warm >/dev/null && "$KILN" pod rm -f warm >/dev/null  # the pause image
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

plain() { for i in 1 2 3; do "$KILN" run -d --network podman --name "p$i" busybox sleep 300 || return 1; done; }
inpod() {
  "$KILN" pod create --name bp >/dev/null || return 1
  for i in 1 2 3; do "$KILN" run -d --pod bp --name "m$i" busybox sleep 300 || return 1; done
}
for _ in $(seq "$N"); do
  ms plain >>"$work/plain"; "$KILN" rm -f -t 0 p1 p2 p3 >/dev/null 2>&1 || "$KILN" rm -f p1 p2 p3 >/dev/null 2>&1
  ms inpod >>"$work/pod"; "$KILN" pod rm -f bp >/dev/null 2>&1
done
ma=$(median_ms "$work/plain" 1); mb=$(median_ms "$work/pod" 1)
printf '3 x run -d --network podman          median %7.1f ms\n' "$ma"
printf 'pod create + 3 x run -d --pod         median %7.1f ms  (%.2fx)\n' "$mb" "$(echo "$mb / $ma" | bc -l)"
echo "N=$N, load before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
