#!/usr/bin/env bash
# Push and pull a ~300 MB single-layer image to/from a local docker-registry
# with kiln, buildah and skopeo in the same run; prints the median of RUNS
# runs for each (seconds). Loopback only; everything lives in a temp dir that
# is removed at the end.
#
#   bench/registry.sh [RUNS]          (default 3; KILN=path/to/kiln, SIZE_MB=300)
set -euo pipefail
RUNS=${1:-3}
SIZE_MB=${SIZE_MB:-300}
TOP=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$TOP/build/src/cli/kiln}
for tool in "$KILN" docker-registry skopeo buildah; do
  command -v "$tool" >/dev/null || { echo "bench/registry.sh: $tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d /var/tmp/kiln-regbench-XXXXXX)
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver vfs rm -a >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

# The image: 2/3 incompressible bytes, 1/3 text, in a few files.
mkdir -p "$WORK/rootfs/data" "$WORK/rootfs/etc"
echo "NAME=kiln-bench" >"$WORK/rootfs/etc/os-release"
RAND_MB=$((SIZE_MB * 2 / 3))
TEXT_MB=$((SIZE_MB - RAND_MB))
head -c "${RAND_MB}M" /dev/urandom >"$WORK/rootfs/data/random.bin"
head -c "$((TEXT_MB / 2))M" /dev/urandom | base64 >"$WORK/rootfs/data/text.txt"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
echo "image: $(du -m "$WORK/rootfs.tar" | cut -f1) MB tar, registry $REG, $RUNS runs" >&2

K="$KILN --root $WORK/kiln"
$K import "$WORK/rootfs.tar" localhost/bench:1 >/dev/null
# An OCI layout of the same image for skopeo, and the image in buildah's store.
$K push -q localhost/bench:1 "oci:$WORK/layout:1" >/dev/null
B="buildah --root $WORK/buildah --runroot $WORK/buildah-run --storage-driver vfs"
$K push -q localhost/bench:1 "docker://$REG/seed/bench:1" >/dev/null
$B pull -q --tls-verify=false "docker://$REG/seed/bench:1" >/dev/null
BID=$($B images -q | head -1)

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; return 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

declare -A R
for i in $(seq "$RUNS"); do
  R[kiln_push]+="$(t $K push -q localhost/bench:1 "docker://$REG/kiln/bench$i:1")"$'\n'
  R[buildah_push]+="$(t $B push -q --tls-verify=false "$BID" "docker://$REG/buildah/bench$i:1")"$'\n'
  R[skopeo_push]+="$(t skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:1" "docker://$REG/skopeo/bench$i:1")"$'\n'

  rm -rf "$WORK/kiln-pull"
  R[kiln_pull]+="$(t $KILN --root "$WORK/kiln-pull" pull -q "$REG/kiln/bench$i:1")"$'\n'
  rm -rf "$WORK/bpull" "$WORK/bpull-run"
  R[buildah_pull]+="$(t buildah --root "$WORK/bpull" --runroot "$WORK/bpull-run" --storage-driver vfs pull -q --tls-verify=false "docker://$REG/kiln/bench$i:1")"$'\n'
  rm -rf "$WORK/spull"
  R[skopeo_pull]+="$(t skopeo copy -q --src-tls-verify=false "docker://$REG/kiln/bench$i:1" "oci:$WORK/spull:1")"$'\n'
done

printf '%-14s %10s\n' "operation" "median s"
for k in kiln_push buildah_push skopeo_push kiln_pull buildah_pull skopeo_pull; do
  printf '%-14s %10s\n' "$k" "$(printf '%s' "${R[$k]}" | grep -v '^$' | median)"
done
