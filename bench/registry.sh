#!/usr/bin/env bash
# Push and pull a ~300 MB single-layer image to/from a local docker-registry
# with kiln, buildah and skopeo in the same run; prints the median of RUNS
# runs for each (seconds). Loopback only; everything lives in a temp dir that
# is removed at the end.
#
#   bench/registry.sh [RUNS]          (default 3; KILN=path/to/kiln, SIZE_MB=300)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
SIZE_MB=${SIZE_MB:-300}
TOP=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$TOP/build/src/cli/kiln}
for tool in "$KILN" docker-registry skopeo buildah; do
  command -v "$tool" >/dev/null || { echo "bench/registry.sh: $tool not found" >&2; exit 1; }
done

# lower case: buildah names an image pulled from oci:PATH after PATH
WORK=/var/tmp/kiln-regbench-$$; rm -rf "$WORK"; mkdir -p "$WORK"
cleanup() {
  for pid in "${REG_PIDS[@]}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
  wait 2>/dev/null || true
  buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver vfs rm -a >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Registries: "pull" holds the image for the pull runs; every push run gets a
# fresh, empty registry so that no tool can skip or cross-mount a blob it
# pushed before (buildah and skopeo remember blob locations in their blob-info
# cache and would otherwise mount instead of upload).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A REG_PIDS
start_registry() {  # NAME -> sets REG to its address
  local name=$1 port
  port=$(free_port)
  REG=127.0.0.1:$port
  rm -rf "$WORK/registry-$name"
  registry_yml "$REG" "$WORK/registry-$name" >"$WORK/registry-$name.yml"
  docker-registry serve "$WORK/registry-$name.yml" >"$WORK/registry-$name.log" 2>&1 &
  REG_PIDS[$name]=$!
  for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "bench/registry.sh: registry $name did not start" >&2; return 1
}
stop_registry() {
  local pid=${REG_PIDS[$1]:-}
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
  REG_PIDS[$1]=
  rm -rf "$WORK/registry-$1"
}

# The image: 2/3 incompressible bytes, 1/3 text, in a few files.
# A static busybox makes `kiln run IMAGE true` possible. `kiln pull` unpacks
# each layer while it downloads (as buildah pull unpacks into its store), so
# kiln_pull is pull+unpack; kiln_pull_then_run adds the first container start
# (which must find every layer already unpacked).
mkdir -p "$WORK/rootfs/data" "$WORK/rootfs/etc" "$WORK/rootfs/bin"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
ln -s busybox "$WORK/rootfs/bin/true"
echo "NAME=kiln-bench" >"$WORK/rootfs/etc/os-release"
RAND_MB=$((SIZE_MB * 2 / 3))
TEXT_MB=$((SIZE_MB - RAND_MB))
head -c "${RAND_MB}M" /dev/urandom >"$WORK/rootfs/data/random.bin"
head -c "$((TEXT_MB / 2))M" /dev/urandom | base64 >"$WORK/rootfs/data/text.txt"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
echo "image: $(du -m "$WORK/rootfs.tar" | cut -f1) MB tar, $RUNS runs, load: $(cut -d" " -f1-3 /proc/loadavg)" >&2

K="$KILN --root $WORK/kiln"
$K import "$WORK/rootfs.tar" localhost/bench:1 >/dev/null
# An OCI layout of the same image for skopeo, and the image in buildah's store.
$K push -q localhost/bench:1 "oci:$WORK/layout:1" >/dev/null
B="buildah --root $WORK/buildah --runroot $WORK/buildah-run --storage-driver vfs"
$B pull -q "oci:$WORK/layout:1" >/dev/null
BID=$($B images -q | head -1)
start_registry pull
PULL_REG=$REG
$K push -q localhost/bench:1 "docker://$PULL_REG/bench/image:1" >/dev/null

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; return 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# The floor for a push: the same blobs uploaded by curl (POST, then one PUT
# streaming the file), no client logic at all. A push cannot beat the
# registry's own ingest (it hashes and writes every byte).
curl_push() {  # curl_push REGISTRY: every blob of the image's OCI layout (manifest included)
  local reg=$1 blob loc
  for blob in "$WORK"/layout/blobs/sha256/*; do
    loc=$(curl -sf -i -X POST "http://$reg/v2/curl/bench/blobs/uploads/" | tr -d '\r' |
      sed -n 's/^[Ll]ocation: //p')
    case $loc in http*) ;; *) loc="http://$reg$loc" ;; esac
    case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
    curl -sf -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$blob" \
      "${loc}digest=sha256:$(basename "$blob")" -o /dev/null || return 1
  done
}

declare -A R
for i in $(seq "$RUNS"); do
  start_registry push; R[curl_upload_floor]+="$(t curl_push "$REG")"$'\n'; stop_registry push
  start_registry push; R[kiln_push]+="$(t $K push -q localhost/bench:1 "docker://$REG/kiln/bench:1")"$'\n'; stop_registry push
  start_registry push; R[buildah_push]+="$(t $B push -q --tls-verify=false "$BID" "docker://$REG/buildah/bench:1")"$'\n'; stop_registry push
  start_registry push; R[skopeo_push]+="$(t skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:1" "docker://$REG/skopeo/bench:1")"$'\n'; stop_registry push

  rm -rf "$WORK/kiln-pull"
  R[kiln_pull]+="$(t $KILN --root "$WORK/kiln-pull" pull -q "$PULL_REG/bench/image:1")"$'\n'
  rm -rf "$WORK/kiln-pull"
  R[kiln_pull_then_run]+="$(t sh -c "$KILN --root $WORK/kiln-pull pull -q $PULL_REG/bench/image:1 && $KILN --root $WORK/kiln-pull run --rm --network none $PULL_REG/bench/image:1 /bin/true")"$'\n'
  rm -rf "$WORK/bpull" "$WORK/bpull-run"
  R[buildah_pull]+="$(t buildah --root "$WORK/bpull" --runroot "$WORK/bpull-run" --storage-driver vfs pull -q --tls-verify=false "docker://$PULL_REG/bench/image:1")"$'\n'
  rm -rf "$WORK/spull"
  R[skopeo_pull]+="$(t skopeo copy -q --src-tls-verify=false "docker://$PULL_REG/bench/image:1" "oci:$WORK/spull:1")"$'\n'
done

printf '%-19s %10s\n' "operation" "median s"
for k in curl_upload_floor kiln_push buildah_push skopeo_push kiln_pull kiln_pull_then_run buildah_pull skopeo_pull; do
  printf '%-19s %10s\n' "$k" "$(printf '%s' "${R[$k]}" | grep -v '^$' | median)"
done
