#!/usr/bin/env bash
# Build benchmarks: kiln beside buildah (--isolation chroot, the mode that
# works unprivileged-container-less on this kind of machine), same machine,
# same run. Prints the median of N runs per scenario and the ratio.
#   bench/build.sh [KILN_BIN] [N]
# Scenarios: cold 20-step build (--no-cache), 20-step rebuild with nothing
# changed, 300 MB context COPY cold and rebuilt with nothing changed, four independent
# 2-second stages. Must run as root; both tools run as root, or, with
# BENCH_USER=NAME (e.g. kiln-test, who has /etc/subuid and /etc/subgid
# ranges), both run as that unprivileged user (rootless buildah).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
KILN=$(readlink -f "${1:-$TOP/build/src/cli/kiln}")
N=${2:-3}
command -v buildah >/dev/null || { echo "buildah is not installed (apt-get install buildah)"; exit 1; }
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KILN_ROOT=$work/store
BENCH_USER=${BENCH_USER:-}
if [[ -n $BENCH_USER ]]; then  # everything below runs as that user, in $work
  chmod 755 "$work"
  mkdir -p "$work/home"
  chown "$BENCH_USER": "$work" "$work/home"
  as() { runuser -u "$BENCH_USER" -- env HOME="$work/home" KILN_ROOT="$KILN_ROOT" XDG_RUNTIME_DIR= "$@"; }
  # rootless buildah keeps files owned by the user's subordinate ids: remove them inside its namespace first
  trap 'as buildah rm -a >/dev/null 2>&1; as buildah unshare rm -rf "$work/home/.local" 2>/dev/null; rm -rf "$work"' EXIT
else
  as() { "$@"; }
fi

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timeit() {  # timeit CMD... -> seconds
  local t0 t1; t0=$(now); as "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }; t1=$(now)
  echo "$t1 - $t0" | bc -l
}
report() {  # report NAME kiln_times buildah_times
  local k b; k=$(echo "$2" | median); b=$(echo "$3" | median)
  printf '%-34s kiln %7.3f s   buildah %7.3f s   buildah/kiln %6.1fx\n' "$1" "$k" "$b" "$(echo "$b / $k" | bc -l)"
}
compare() {  # compare NAME DIR "KILN BUILD FLAGS" "BUILDAH BUILD FLAGS": N builds of DIR each, then report
  local k="" b="" tag; tag=$(basename "$2")
  for _ in $(seq "$N"); do
    k+="$(timeit "$KILN" build $3 -q -t "$tag" "$2")"$'\n'
    b+="$(timeit buildah build --isolation chroot $4 -q -t "$tag" "$2")"$'\n'
  done
  report "$1" "$k" "$b"
}

"$TOP/scripts/make-busybox-rootfs.sh" "$work/busybox.tar" >/dev/null
chmod 644 "$work/busybox.tar"
as "$KILN" import "$work/busybox.tar" busybox >/dev/null
ctr=$(as buildah from scratch)
as buildah add "$ctr" "$work/busybox.tar" / >/dev/null
as buildah commit -q "$ctr" localhost/busybox >/dev/null
as buildah rm "$ctr" >/dev/null
echo "kiln and buildah as ${BENCH_USER:-root}, N=$N, load $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. 20 RUN steps, cold.
mkdir -p "$work/steps"
{ echo "FROM localhost/busybox"; for i in $(seq 1 20); do echo "RUN echo $i > /file$i"; done; } >"$work/steps/Containerfile"
compare "20-step build, cold" "$work/steps" "--no-cache" "--no-cache"

# 2. The same, nothing changed (cache).
compare "20-step rebuild, nothing changed" "$work/steps" "" "--layers"

# 3. A 300 MB context (10,000 small files + 256 MB), rebuilt with nothing changed.
mkdir -p "$work/ctx/small"
for i in $(seq 1 10000); do echo "file $i" >"$work/ctx/small/f$i"; done
head -c 268435456 /dev/urandom >"$work/ctx/big.bin"
printf 'FROM localhost/busybox\nCOPY . /ctx/\nRUN ls /ctx | wc -l > /count\n' >"$work/ctx/Containerfile"
# 3a. The same context copied cold (issue [2.6]: COPY of a 296 MB context).
compare "300 MB context COPY, cold" "$work/ctx" "--no-cache" "--no-cache"
as "$KILN" build -q -t ctx "$work/ctx" >/dev/null
as buildah build --isolation chroot --layers -q -t ctx "$work/ctx" >/dev/null
compare "300 MB context rebuild, unchanged" "$work/ctx" "" "--layers"

# 4. Four independent 2-second stages.
mkdir -p "$work/par"
{ for s in a b c d; do echo "FROM localhost/busybox AS $s"; echo "RUN sleep 2 && echo $s > /$s"; done
  echo "FROM localhost/busybox"; for s in a b c d; do echo "COPY --from=$s /$s /$s"; done; } >"$work/par/Containerfile"
compare "4 parallel 2 s stages (floor 2 s)" "$work/par" "--no-cache" "--no-cache --jobs 4"
