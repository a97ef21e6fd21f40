#!/usr/bin/env bash
# Multi-platform build benchmark (issue 8): one `kiln build --platform
# linux/amd64,linux/arm64` beside the two single-platform builds run one
# after the other, same Containerfile, each run on a fresh copy of a store
# that holds only the two busybox bases (index "busybox"). arm64 RUN steps
# run under qemu-user-static. Prints the median of N runs and the load.
#   bench/multiplatform.sh [KILN_BIN] [N]
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
KILN=$(readlink -f "${1:-$TOP/build/src/cli/kiln}")
N=${2:-3}
work=$(mktemp -d /tmp/kiln-bench-mp.XXXXXX)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$TOP/scripts/make-busybox-rootfs.sh" "$work/bb-amd64.tar" >/dev/null
"$TOP/scripts/make-busybox-rootfs.sh" --arch arm64 "$work/bb-arm64.tar" >/dev/null
export KILN_ROOT=$work/template
"$KILN" import --platform linux/amd64 "$work/bb-amd64.tar" busybox-amd64 >/dev/null
"$KILN" import --platform linux/arm64 "$work/bb-arm64.tar" busybox-arm64 >/dev/null
"$KILN" manifest create busybox busybox-amd64 busybox-arm64 >/dev/null

# A native builder stage (the cross-compilation pattern) and a final stage
# with CPU-bound shell RUN steps (what emulation slows down).
mkdir -p "$work/ctx"
cat >"$work/ctx/Containerfile" <<'CF'
FROM --platform=$BUILDPLATFORM busybox AS builder
RUN i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo "$i on $(uname -m)" > /built
FROM busybox
COPY --from=builder /built /built
RUN i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; uname -m > /arch
RUN for f in 1 2 3 4 5 6 7 8; do echo $f > /f$f; done
RUN md5sum /bin/busybox > /sum
CF

fresh() { rm -rf "$work/store"; cp -a "$work/template" "$work/store"; export KILN_ROOT=$work/store; }
build() { "$KILN" build -q "$@" "$work/ctx" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; }

multi=""; seq_total=""; amd=""; arm=""
for _ in $(seq "$N"); do
  fresh
  t0=$(now); build --platform linux/amd64,linux/arm64 -t app; t1=$(now)
  multi+="$(echo "$t1 - $t0" | bc -l)"$'\n'
  fresh
  t0=$(now); build --platform linux/amd64 -t app-amd64; t1=$(now)
  build --platform linux/arm64 -t app-arm64; t2=$(now)
  amd+="$(echo "$t1 - $t0" | bc -l)"$'\n'
  arm+="$(echo "$t2 - $t1" | bc -l)"$'\n'
  seq_total+="$(echo "$t2 - $t0" | bc -l)"$'\n'
done
m=$(printf '%s' "$multi" | median); s=$(printf '%s' "$seq_total" | median)
printf 'two-platform build (one command)      %7.3f s  (median of %d)\n' "$m" "$N"
printf 'linux/amd64 then linux/arm64 builds   %7.3f s  (amd64 %.3f s + arm64 %.3f s)\n' "$s" \
  "$(printf '%s' "$amd" | median)" "$(printf '%s' "$arm" | median)"
printf 'sequential / one command              %7.2fx\n' "$(echo "$s / $m" | bc -l)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
