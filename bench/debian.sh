#!/usr/bin/env bash
# Debian + package install, cold (issue [2.6]): kiln beside buildah 1.28 in the
# same run, same machine, same network path, nothing from the internet while
# measuring. Does all its own set-up:
#   - a Debian 12 (bookworm) minbase rootfs made once by debootstrap from the
#     machine's Debian mirror, with the apt/dpkg settings of Debian's official
#     images (debuerreotype's minimizing config: force-unsafe-io, apt's caches
#     cleaned after each install, ...), cached in $KILN_BENCH_CACHE (default
#     /var/cache/kiln-bench/debian12-ARCH) together with
#   - a local package repository: the .debs `apt-get install python3` needs on
#     that base (downloaded once, inside the new rootfs), indexed by
#     dpkg-scanpackages, served over loopback HTTP while the bench runs;
#   - a loopback docker-registry holding the base image (one gzip layer, pushed
#     by kiln), so both tools pull the same base cold;
#   - the stores of both tools on a fresh ext4 loop file system (see STORES
#     below; BENCH_FS=host for the machine's own);
#   - both tools build with --network host (the same path to the package
#     repository on 127.0.0.1), buildah with chroot isolation and overlay
#     storage, each cold run on an empty store of its own.
# Rows (medians of N runs; wall seconds and buildah/kiln, then the CPU time,
# user + system of each tool's whole process tree, which the load of other
# work on the machine disturbs less):
#   base step      FROM the registry image + `RUN true`, empty store: pull,
#                  unpack, overlay mount, sandbox start (item 5 of the issue)
#   cold           FROM + apt-get update/install python3 from the local
#                  repository + COPY + RUN python3, empty store, --no-cache
#   rebuild        the same again on the store of the cold run (cached; buildah
#                  gets one untimed --layers build first, as its cache needs)
# as root and, when root, as the unprivileged test user ($KILN_TEST_USER,
# default kiln-test; rootless buildah needs its /etc/subuid range).
#
#   bench/debian.sh [KILN_BIN] [N]     (run as root; default N=3)
#   SKIP_USER=1 / SKIP_ROOT=1 / SKIP_BUILDAH=1 leave those rows out;
#   ROWS="base cold rebuild" picks rows; KILN_ONLY=1 = SKIP_BUILDAH=1.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/bench/lib.sh"
KILN=$(readlink -f "${1:-$TOP/build/src/cli/kiln}")
N=${2:-3}
USER_NAME=${KILN_TEST_USER:-kiln-test}
ROWS=${ROWS:-base cold rebuild}
[[ -n ${KILN_ONLY:-} ]] && SKIP_BUILDAH=1
[[ $(id -u) == 0 ]] || { echo "bench/debian.sh: run as root (debootstrap, the registry, the test user)" >&2; exit 1; }
id "$USER_NAME" >/dev/null 2>&1 || SKIP_USER=1
[[ -x $KILN ]] || { echo "bench/debian.sh: $KILN is not built" >&2; exit 1; }

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v curl >/dev/null || need+=(curl)
[[ -z ${SKIP_BUILDAH:-} ]] && ! command -v buildah >/dev/null && need+=(buildah)
if ((${#need[@]})); then
  echo "bench/debian.sh: installing ${need[*]}" >&2
  apt-get install -y -q "${need[@]}" >/dev/null
fi

# --- the cached base rootfs and package repository ---------------------------
ARCH=$(dpkg --print-architecture)
CACHE=${KILN_BENCH_CACHE:-/var/cache/kiln-bench/debian12-$ARCH}
PACKAGES=${BENCH_PACKAGES:-python3}
mirror() {  # the machine's Debian mirror (first deb822 or one-line entry for .../debian)
  [[ -n ${DEBIAN_MIRROR:-} ]] && { echo "$DEBIAN_MIRROR"; return; }
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}')
  [[ -z $m ]] && m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) {print $i; exit}}')
  echo "${m:-http://deb.debian.org/debian}"
}
make_cache() {
  local tmp root
  mkdir -p "$(dirname "$CACHE")"
  tmp=$(mktemp -d "$CACHE.new.XXXXXX")
  root=$tmp/rootfs
  echo "bench/debian.sh: debootstrap --variant=minbase bookworm from $(mirror) into $CACHE (once)" >&2
  debootstrap --variant=minbase --arch "$ARCH" bookworm "$root" "$(mirror)" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -20 "$tmp/debootstrap.log" >&2; rm -rf "$tmp"; exit 1; }
  # The packages `apt-get install $PACKAGES` needs on exactly this base,
  # resolved and downloaded inside it (the rootfs's own apt, lists, versions).
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" apt-get -q clean >"$tmp/apt.log" 2>&1 &&
    chroot "$root" apt-get -q update >>"$tmp/apt.log" 2>&1 &&
    chroot "$root" apt-get -q install -y --no-install-recommends --download-only $PACKAGES >>"$tmp/apt.log" 2>&1 ||
    { tail -20 "$tmp/apt.log" >&2; rm -rf "$tmp"; exit 1; }
  mkdir "$tmp/repo"
  mv "$root"/var/cache/apt/archives/*.deb "$tmp/repo/"
  (cd "$tmp/repo" && dpkg-scanpackages -m . 2>/dev/null | gzip -9n >Packages.gz)
  # Debian's official images (debuerreotype's minimizing config) have these
  # settings, so `FROM debian:12` builds see them: no service starts, dpkg
  # without its per-file syncs, apt's caches and .debs removed after each
  # install, indexes kept compressed, no translations.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  local clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
  printf 'DPkg::Post-Invoke { %s };\nAPT::Update::Post-Invoke { %s };\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' \
    "$clean" "$clean" >"$root/etc/apt/apt.conf.d/docker-clean"
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  # The base as an image would ship it: no package lists, no downloaded
  # .debs, no host resolv.conf, no proc/sys content.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/partial/*
  : >"$root/etc/resolv.conf"
  tar --numeric-owner --xattrs -C "$root" -cf "$tmp/rootfs.tar" .
  rm -rf "$root"
  echo "$STAMP" >"$tmp/STAMP"
  chmod -R a+rX "$tmp"
  rm -rf "$CACHE"
  mv "$tmp" "$CACHE"
}
STAMP="bookworm minbase $ARCH, official-image apt/dpkg config (v2); packages: $PACKAGES"
[[ $(cat "$CACHE/STAMP" 2>/dev/null) == "$STAMP" && -f $CACHE/rootfs.tar && -f $CACHE/repo/Packages.gz ]] || make_cache

# --- the run's own directory, registry and package server --------------------
WORK=$(mktemp -d /var/tmp/kiln-debbench.XXXXXX)
chmod 755 "$WORK"
REG_PID= HTTP_PID=
cleanup() {
  set +e
  for p in $REG_PID $HTTP_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  if mountpoint -q "$WORK/fs" 2>/dev/null; then
    { findmnt -rn -o TARGET | grep "^$WORK/fs/" | sort -r | while read -r m; do umount -l "$m"; done; } 2>/dev/null || true
    umount "$WORK/fs" 2>/dev/null || umount -l "$WORK/fs" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "bench/debian.sh: $1 does not answer" >&2; exit 1; }

REG=127.0.0.1:$(free_port)
registry_yml "$REG" "$WORK/registry" >"$WORK/registry.yml"
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
wait_http "http://$REG/v2/"
APT=127.0.0.1:$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$CACHE/repo" "${APT##*:}" >"$WORK/http.log" 2>&1 &
HTTP_PID=$!
wait_http "http://$APT/Packages.gz"

BASE=$REG/bench/debian:12
"$KILN" --root "$WORK/seed" import "$CACHE/rootfs.tar" localhost/debian:12 >/dev/null
"$KILN" --root "$WORK/seed" push -q localhost/debian:12 "docker://$BASE" >/dev/null
rm -rf "$WORK/seed"

# The build contexts (readable by the test user).
mkdir -p "$WORK/ctx-base" "$WORK/ctx-cold"
printf 'FROM %s\nRUN true\n' "$BASE" >"$WORK/ctx-base/Containerfile"
cat >"$WORK/ctx-cold/app.py" <<'EOF'
import json, platform, sys
print(json.dumps({"python": platform.python_version(), "argv": sys.argv}))
EOF
cat >"$WORK/ctx-cold/Containerfile" <<EOF
FROM $BASE
RUN echo 'deb [trusted=yes] http://$APT/ ./' >/etc/apt/sources.list && rm -f /etc/apt/sources.list.d/* && \\
    apt-get update && apt-get install -y --no-install-recommends $PACKAGES && rm -rf /var/lib/apt/lists/*
COPY app.py /app/app.py
RUN python3 /app/app.py >/app/out && cat /app/out
EOF
chmod -R a+rX "$WORK/ctx-base" "$WORK/ctx-cold"
mkdir -p "$WORK/home" && chown "$USER_NAME" "$WORK/home" 2>/dev/null || true

# Where the stores live. The default is a fresh ext4 file system (mkfs.ext4's
# defaults, so with a journal) on a loop device, made for this run: the
# development machine's root file system is ext4 WITHOUT a journal, where the
# kernel skips every free inode deleted in the last 1-6 minutes when it
# allocates one (fs/ext4/ialloc.c, recently_deleted(), only without a
# journal), so after other sessions delete trees a file creation costs 0.3-1.4
# ms instead of 0.05 ms and the same pull takes 4 s or 15 s (docs/performance.md).
# BENCH_FS=host measures on $WORK's file system instead.
STORES=$WORK
if [[ ${BENCH_FS:-loop} == loop ]]; then
  truncate -s "${BENCH_FS_SIZE:-24G}" "$WORK/fs.img"
  mkfs.ext4 -q -F "$WORK/fs.img"
  mkdir "$WORK/fs"
  mount -o loop,discard "$WORK/fs.img" "$WORK/fs"
  chmod 755 "$WORK/fs"
  STORES=$WORK/fs
fi
mkdir -p "$STORES/user" && chown "$USER_NAME" "$STORES/user" 2>/dev/null || true

# --- measuring ---------------------------------------------------------------
as() {  # as root|user CMD...: CMD's user + system CPU time goes to $WORK/last.cpu
  local who=$1; shift
  if [[ $who == root ]]; then
    /usr/bin/time -o "$WORK/last.cpu" -f '%U %S' "$@"
  else
    /usr/bin/time -o "$WORK/last.cpu" -f '%U %S' runuser -u "$USER_NAME" -- env HOME="$WORK/home" XDG_RUNTIME_DIR= "$@"
  fi
}
t() {  # t BUILD_FUNCTION ARGS...: "WALL CPU" seconds of one run (CPU: user + system of the
       # whole process tree, measured by `as`)
  local s e; s=$(date +%s.%N)
  "$@" >"$WORK/last.out" 2>&1 || { tail -30 "$WORK/last.out" >&2; return 1; }
  e=$(date +%s.%N)
  echo "$(echo "$e - $s" | bc) $(awk '{print $1 + $2}' "$WORK/last.cpu")"
}
median() {  # median [COLUMN]
  awk -v c="${1:-1}" 'NF {print $c}' | sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit; if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'
}
kiln_build() {  # kiln_build WHO STORE CTX [FLAGS...]
  local who=$1 store=$2 ctx=$3; shift 3
  as "$who" "$KILN" --root "$store" build --network host "$@" -t localhost/bench-deb "$ctx"
}
buildah_build() {  # buildah_build WHO STORE CTX [FLAGS...]
  local who=$1 store=$2 ctx=$3; shift 3
  as "$who" buildah --root "$store/root" --runroot "$store/run" --storage-driver overlay build --isolation chroot \
    --network host --tls-verify=false "$@" -t localhost/bench-deb "$ctx"
}
fresh() {  # fresh WHO DIR: an empty directory the user owns
  rm -rf "$1"; mkdir -p "$1"; [[ $2 == root ]] || chown "$USER_NAME" "$1"
}
drop_store() {  # drop_store WHO TOOL DIR
  if [[ $2 == buildah ]]; then
    as "$1" buildah --root "$3/root" --runroot "$3/run" --storage-driver overlay rmi -a -f >/dev/null 2>&1 || true
    as "$1" buildah --root "$3/root" --runroot "$3/run" --storage-driver overlay rm -a >/dev/null 2>&1 || true
  fi
  umount -R "$3/root/overlay" 2>/dev/null || true
  rm -rf "$3"
}

declare -A R
whos=()
for w in ${WHO_ORDER:-root user}; do  # WHO_ORDER="user root" measures the test user first
  [[ $w == root && -z ${SKIP_ROOT:-} ]] && whos+=(root)
  [[ $w == user && -z ${SKIP_USER:-} ]] && whos+=(user)
done
tools=(kiln)
[[ -z ${SKIP_BUILDAH:-} ]] && tools+=(buildah)
echo "base: $(du -m "$CACHE/rootfs.tar" | cut -f1) MB tar; repo: $(ls "$CACHE"/repo/*.deb | wc -l) .debs" \
  "($(du -cm "$CACHE"/repo/*.deb | tail -1 | cut -f1) MB); stores on $(findmnt -no FSTYPE,SOURCE --target "$STORES" | tr '\n' ' ')" \
  "($([[ ${BENCH_FS:-loop} == loop ]] && echo "fresh, journal" || echo host)); $N runs; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
# One untimed cold build per tool first: whichever half of the run came
# first was ~1 s slower per cold build (the fresh file system's first
# writes, caches), whoever ran it.
for tool in "${tools[@]}"; do
  who=${whos[0]}
  [[ $who == root ]] && st=$STORES/warm || st=$STORES/user/warm
  fresh "$st" "$who"
  t ${tool}_build "$who" "$st" "$WORK/ctx-cold" --no-cache >/dev/null
  drop_store "$who" "$tool" "$st"
done
for who in "${whos[@]}"; do
  [[ $who == root ]] && home=$STORES || home=$STORES/user
  for _ in $(seq "$N"); do
    for tool in "${tools[@]}"; do
      st=$home/$tool-store
      if [[ " $ROWS " == *" base "* ]]; then
        fresh "$st" "$who"
        R[$who-$tool-base]+="$(t ${tool}_build "$who" "$st" "$WORK/ctx-base" --no-cache)"$'\n'
        drop_store "$who" "$tool" "$st"
      fi
      if [[ " $ROWS " == *" cold "* || " $ROWS " == *" rebuild "* ]]; then
        fresh "$st" "$who"
        R[$who-$tool-cold]+="$(t ${tool}_build "$who" "$st" "$WORK/ctx-cold" --no-cache)"$'\n'
        grep -q '"python": "3' "$WORK/last.out" || { echo "bench/debian.sh: $tool did not run python3:" >&2; tail "$WORK/last.out" >&2; exit 1; }
        if [[ " $ROWS " == *" rebuild "* ]]; then
          flags=()
          if [[ $tool == buildah ]]; then  # buildah keeps step layers only with --layers: one untimed build to fill them
            flags=(--layers)
            t buildah_build "$who" "$st" "$WORK/ctx-cold" --layers >/dev/null
          fi
          R[$who-$tool-rebuild]+="$(t ${tool}_build "$who" "$st" "$WORK/ctx-cold" "${flags[@]}")"$'\n'
        fi
        drop_store "$who" "$tool" "$st"
      fi
    done
  done
done

row() {  # row WHO NAME LABEL: wall medians and ratio, then the CPU medians and ratio
  local k b kc bc_
  k=$(printf '%s' "${R[$1-kiln-$2]:-}" | median 1)
  [[ -z $k ]] && return 0
  kc=$(printf '%s' "${R[$1-kiln-$2]:-}" | median 2)
  b=$(printf '%s' "${R[$1-buildah-$2]:-}" | median 1)
  bc_=$(printf '%s' "${R[$1-buildah-$2]:-}" | median 2)
  if [[ -n $b ]]; then
    printf '%-40s kiln %7.3f s   buildah %7.3f s   buildah/kiln %5.2fx   (cpu %6.2f s / %6.2f s = %5.2fx)\n' \
      "$3" "$k" "$b" "$(echo "$b / $k" | bc -l)" "$kc" "$bc_" "$(echo "$bc_ / ($kc + 0.001)" | bc -l)"
  else
    printf '%-40s kiln %7.3f s   (cpu %6.2f s)\n' "$3" "$k" "$kc"
  fi
}
for who in "${whos[@]}"; do
  [[ $who == root ]] && w=root || w=$USER_NAME
  row "$who" base "base step (FROM + RUN true), $w"
  row "$who" cold "Debian + apt-get $PACKAGES, cold, $w"
  row "$who" rebuild "the same, rebuilt (cached), $w"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
