#!/usr/bin/env bash
# Pull + unpack of a ~300 MB single-layer image (10,000 small files + 256 MB,
# the shape of issue [2.6]'s COPY context) from a local docker-registry, in
# the same run: kiln pull (root and, when root, the unprivileged test user),
# buildah pull (vfs, root), and the floor the issue sets: GNU `tar -x` of the
# same gzip layer blob (as root keeping owners, as the user without). Also
# kiln's unpack alone (bench/kiln-bench-layer) with its writer threads and
# with one, and with zlib's inflate instead of ISA-L's. Medians of RUNS runs,
# seconds, with the ratios to the floor.
#
# Each row extracts where the previous one's tree was just removed. On ext4
# without a journal (this project's test machine) a new inode in a block
# group skips, reading each one, every inode freed there in the last 30 s, so
# a tree made beside a removed one costs several times its own work. kiln's
# store marks its tmp directory as a top directory (chattr +T), so its
# staging trees go to other groups; the row "GNU tar -xzf, fresh group"
# extracts into a +T parent the same way: the floor without that cost.
#
#   bench/unpack.sh [BUILD_DIR] [RUNS]    (default: build 3; as root)
#   SKIP_USER=1 / SKIP_BUILDAH=1 leave those rows out.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath "${1:-$TOP/build}")
RUNS=${2:-3}
KILN=$BUILD/src/cli/kiln
BENCH=$BUILD/bench/kiln-bench-layer
USER_NAME=${KILN_TEST_USER:-kiln-test}
for tool in "$KILN" "$BENCH" docker-registry curl; do
  command -v "$tool" >/dev/null || { echo "bench/unpack.sh: $tool not found" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || SKIP_BUILDAH=1 SKIP_USER=1
id "$USER_NAME" >/dev/null 2>&1 || SKIP_USER=1
command -v buildah >/dev/null || SKIP_BUILDAH=1

WORK=$(mktemp -d /var/tmp/kiln-unpackbench.XXXXXX)
chmod 755 "$WORK"
REG_PID=
cleanup() {
  [[ -n $REG_PID ]] && { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
  buildah --root "$WORK/bpull" --runroot "$WORK/bpull-run" --storage-driver vfs rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

as_user() { runuser -u "$USER_NAME" -- env HOME="$WORK/home" XDG_RUNTIME_DIR= "$@"; }
t() {  # t CMD...: wall seconds of one run (output dropped)
  local s e; s=$(date +%s.%N)
  "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; return 1; }
  e=$(date +%s.%N); echo "$e - $s" | bc
}
median() { { grep -v '^$' || true; } | sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit; if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# The image: kiln-bench-layer's tree (10,000 files of 0.5-8.5 KiB in 100
# directories + 256 MB half-compressible), imported and pushed as gzip.
"$BENCH" gen "$WORK/rootfs" 10000 256 >/dev/null
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
rm -rf "$WORK/rootfs"
K="$KILN --root $WORK/kiln"
$K import "$WORK/rootfs.tar" localhost/unpack:1 >/dev/null
rm -f "$WORK/rootfs.tar"
$K push -q localhost/unpack:1 "oci:$WORK/layout:1" >/dev/null
LAYER=$(ls -S "$WORK"/layout/blobs/sha256/* | head -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$port
registry_yml "$REG" "$WORK/registry" >"$WORK/registry.yml"
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
$K push -q localhost/unpack:1 "docker://$REG/bench/unpack:1" >/dev/null
mkdir -p "$WORK/home" && chown "$USER_NAME" "$WORK/home" 2>/dev/null || true
chmod 644 "$LAYER"
echo "layer: $(du -m "$LAYER" | cut -f1) MB gzip, $(gzip -dc "$LAYER" | wc -c | awk '{printf "%.0f", $1/1e6}') MB tar; $RUNS runs; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A R
for _ in $(seq "$RUNS"); do
  rm -rf "$WORK/x" && mkdir "$WORK/x"
  R[tar_root]+="$(t tar --numeric-owner -xzf "$LAYER" -C "$WORK/x")"$'\n'
  rm -rf "$WORK/x" "$WORK/top" && mkdir "$WORK/top" && { chattr +T "$WORK/top" 2>/dev/null || true; } && mkdir "$WORK/top/x.$RANDOM"
  R[tar_root_fresh]+="$(t tar --numeric-owner -xzf "$LAYER" -C "$WORK"/top/x.*)"$'\n'
  rm -rf "$WORK/top"
  rm -rf "$WORK/x" && mkdir "$WORK/x"
  R[unpack_threads]+="$(t "$BENCH" unpack "$LAYER" "$WORK/x")"$'\n'
  rm -rf "$WORK/x" && mkdir "$WORK/x"
  R[unpack_1thread]+="$(KILN_UNPACK_THREADS=1 t "$BENCH" unpack "$LAYER" "$WORK/x")"$'\n'
  rm -rf "$WORK/x" && mkdir "$WORK/x"
  R[unpack_zlib]+="$(KILN_GZIP_INFLATE=zlib t "$BENCH" unpack "$LAYER" "$WORK/x")"$'\n'
  rm -rf "$WORK/x" "$WORK/kp"
  R[kiln_pull_root]+="$(t "$KILN" --root "$WORK/kp" pull -q "$REG/bench/unpack:1")"$'\n'
  rm -rf "$WORK/kp"
  if [[ -z ${SKIP_BUILDAH:-} ]]; then
    rm -rf "$WORK/bpull" "$WORK/bpull-run"
    R[buildah_pull_root]+="$(t buildah --root "$WORK/bpull" --runroot "$WORK/bpull-run" --storage-driver vfs \
      pull -q --tls-verify=false "docker://$REG/bench/unpack:1")"$'\n'
    buildah --root "$WORK/bpull" --runroot "$WORK/bpull-run" --storage-driver vfs rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$WORK/bpull" "$WORK/bpull-run"
  fi
  if [[ -z ${SKIP_USER:-} ]]; then
    as_user mkdir "$WORK/home/x"
    R[tar_user]+="$(t as_user tar -xzf "$LAYER" -C "$WORK/home/x")"$'\n'
    rm -rf "$WORK/home/x"
    as_user mkdir "$WORK/home/top" && { as_user chattr +T "$WORK/home/top" 2>/dev/null || true; } && as_user mkdir "$WORK/home/top/x.$RANDOM"
    R[tar_user_fresh]+="$(t as_user tar -xzf "$LAYER" -C "$WORK"/home/top/x.*)"$'\n'
    rm -rf "$WORK/home/top"
    R[kiln_pull_user]+="$(t as_user "$KILN" --root "$WORK/home/kp" pull -q "$REG/bench/unpack:1")"$'\n'
    as_user "$KILN" --root "$WORK/home/kp" rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$WORK/home/kp"
  fi
done

floor_root=$(printf '%s' "${R[tar_root]}" | median)
floor_user=$(printf '%s' "${R[tar_user]:-}" | median)
fresh_root=$(printf '%s' "${R[tar_root_fresh]}" | median)
fresh_user=$(printf '%s' "${R[tar_user_fresh]:-}" | median)
row() {  # row KEY LABEL FLOOR FRESH_FLOOR
  local m; m=$(printf '%s' "${R[$1]:-}" | median)
  [[ -z $m ]] && return 0
  printf '%-44s %8.3f s   %5.2fx GNU tar -x   %5.2fx fresh group\n' "$2" "$m" "$(echo "$m / $3" | bc -l)" \
    "$(echo "$m / $4" | bc -l)"
}
row tar_root "GNU tar -xzf, root (the floor)" "$floor_root" "$fresh_root"
row tar_root_fresh "GNU tar -xzf, root, fresh group" "$floor_root" "$fresh_root"
row unpack_threads "kiln unpack (writer threads), root" "$floor_root" "$fresh_root"
row unpack_1thread "kiln unpack (1 thread), root" "$floor_root" "$fresh_root"
row unpack_zlib "kiln unpack (zlib inflate), root" "$floor_root" "$fresh_root"
row kiln_pull_root "kiln pull (+unpack), root" "$floor_root" "$fresh_root"
row buildah_pull_root "buildah pull (+unpack, vfs), root" "$floor_root" "$fresh_root"
[[ -n $floor_user ]] && {
  row tar_user "GNU tar -xzf, $USER_NAME (the floor)" "$floor_user" "$fresh_user"
  row tar_user_fresh "GNU tar -xzf, $USER_NAME, fresh group" "$floor_user" "$fresh_user"
  row kiln_pull_user "kiln pull (+unpack), $USER_NAME" "$floor_user" "$fresh_user"
}
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
