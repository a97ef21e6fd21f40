#!/usr/bin/env bash
# Layer archive benchmark: kiln packs a ~320 MB tree (10,000 small files +
# 256 MB of half-compressible data) to gzip and zstd layers and unpacks them
# again; buildah does the same content (commit, push with gzip/zstd to an
# OCI layout, pull back = unpack) when it is installed and we are root.
# Prints the median of $RUNS runs: wall time, MB/s of uncompressed tar, CPU
# seconds and peak RSS (/usr/bin/time -v).
#
#   bench/layer.sh [BUILD_DIR]     (default: build; needs bench/kiln-bench-layer)
#   RUNS=3 KILN_BENCH_DIR=/var/tmp/x SKIP_BUILDAH=1 bench/layer.sh build-layer
set -euo pipefail

BUILD=${1:-build}
BIN=$(realpath "$BUILD/bench/kiln-bench-layer")
RUNS=${RUNS:-3}
WORK=${KILN_BENCH_DIR:-/var/tmp/kiln-bench-layer}
mkdir -p "$WORK"
TREE=$WORK/tree
TIME=$WORK/time.txt

if [[ ! -d $TREE/big ]]; then
  echo "generating $TREE ..." >&2
  "$BIN" gen "$TREE" 10000 256
fi
TAR_MB=$("$BIN" pack "$TREE" /dev/null none | sed -n 's/.*: \([0-9.]*\) MB tar.*/\1/p')
echo "tree: $(du -sm "$TREE" | cut -f1) MB on disk, $TAR_MB MB as tar; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# run LABEL CMD... : RUNS timed runs; prints the medians.
run() {
  local label=$1; shift
  local walls=() cpus=() rsss=()
  for ((i = 0; i < RUNS; i++)); do
    [[ -n ${PRE:-} ]] && eval "$PRE"
    /usr/bin/time -v -o "$TIME" "$@" >/dev/null 2>"$WORK/err.txt" || { cat "$WORK/err.txt" >&2; return 1; }
    local wall cpu rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(k=1;k<=n;k++) s=s*60+t[k]; print s}' "$TIME")
    cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$TIME")
    rss=$(awk -F': ' '/Maximum resident/ {print int($2/1024)}' "$TIME")
    walls+=("$wall"); cpus+=("$cpu"); rsss+=("$rss")
  done
  local w c r
  w=$(printf '%s\n' "${walls[@]}" | median)
  c=$(printf '%s\n' "${cpus[@]}" | median)
  r=$(printf '%s\n' "${rsss[@]}" | median)
  awk -v l="$label" -v w="$w" -v c="$c" -v r="$r" -v mb="$TAR_MB" 'BEGIN {
    printf "%-28s wall %6.2f s  %6.0f MB/s   cpu %6.2f s (%4.0f MB per cpu-s)   peak RSS %4d MB\n",
      l, w, mb / w, c, mb / c, r }'
}

echo "== kiln (median of $RUNS)"
for c in zstd gzip; do
  run "kiln pack $c" "$BIN" pack "$TREE" "$WORK/layer.$c" "$c"
  ls -l "$WORK/layer.$c" | awk -v c="$c" '{printf "  %s layer: %.1f MB\n", c, $5 / 1e6}'
done
for c in zstd gzip; do
  PRE="rm -rf '$WORK/unpacked'" run "kiln unpack $c" "$BIN" unpack "$WORK/layer.$c" "$WORK/unpacked"
  PRE="rm -rf '$WORK/unpacked'" KILN_UNPACK_THREADS=1 run "kiln unpack $c, 1 thread" "$BIN" unpack "$WORK/layer.$c" "$WORK/unpacked"
done
# The floor the issue sets (kiln's unpack <= 0.7x of it): GNU tar extracting
# the same gzip layer, as root keeping owners (as kiln does).
PRE="rm -rf '$WORK/unpacked'; mkdir -p '$WORK/unpacked'" run "GNU tar -x gzip" \
  tar --numeric-owner -xzf "$WORK/layer.gzip" -C "$WORK/unpacked"
rm -rf "$WORK/unpacked"

if [[ -n ${SKIP_BUILDAH:-} ]] || ! command -v buildah >/dev/null || [[ $(id -u) != 0 ]]; then
  echo "== buildah: skipped (SKIP_BUILDAH, not installed, or not root)"
  exit 0
fi
echo "== buildah $(buildah --version | cut -d' ' -f3) (vfs storage, median of $RUNS)"
BS=$WORK/buildah
B=(buildah --root "$BS/root" --runroot "$BS/run" --storage-driver vfs)
rm -rf "$BS"
ctr=$("${B[@]}" from scratch)
"${B[@]}" copy --quiet "$ctr" "$TREE" /tree >/dev/null
run "buildah commit (no compr.)" "${B[@]}" commit --quiet --rm=false "$ctr" kiln-bench
for c in zstd gzip; do
  PRE="rm -rf '$BS/oci-$c'" run "buildah push $c" "${B[@]}" push --quiet --compression-format "$c" kiln-bench "oci:$BS/oci-$c:latest"
done
for c in zstd gzip; do
  PRE="buildah --root '$BS/root2' --runroot '$BS/run2' --storage-driver vfs rmi -a -f >/dev/null 2>&1 || true" \
    run "buildah pull+unpack $c" buildah --root "$BS/root2" --runroot "$BS/run2" --storage-driver vfs \
      from --quiet "oci:$BS/oci-$c:latest"
done
"${B[@]}" rm -a >/dev/null 2>&1 || true
buildah --root "$BS/root2" --runroot "$BS/run2" --storage-driver vfs rm -a >/dev/null 2>&1 || true
rm -rf "$BS"
