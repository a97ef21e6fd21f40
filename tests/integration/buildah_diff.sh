#!/usr/bin/env bash
# Differential test: every successful case under testdata/build/ is built by
# kiln and by buildah (when installed) from the same context and the same
# offline busybox base, both images are flattened by the independent checker
# (ociflat.py), and flatdiff.py compares what a user sees: paths, types,
# permission bits, owners, symlink targets, file contents, and the runtime
# fields of the config. A case may list justified differences in
# testdata/build/<case>/buildah-differences (`path P REASON` or
# `config FIELD REASON`); docs/build.md explains each.
#
# buildah runs as root with --isolation chroot (the only isolation that works
# in this kind of machine); kiln runs as root too so that both see the same ids.
# Cases buildah itself cannot build (features newer than the installed buildah)
# are skipped with buildah's error.
set -u
. "$(dirname "$0")/lib.sh"
CASES_DIR=${KILN_TESTDATA:-$KILN_SOURCE_ROOT/testdata}/build
ONLY=${KILN_CASE:-}

if ! command -v buildah >/dev/null; then
  tap_skip "buildah is not installed (Debian package buildah): no differential test"; tap_done; exit
fi
if [ "$(id -u)" -ne 0 ]; then
  tap_skip "buildah works here only as root (--isolation chroot): run the suite as root"; tap_done; exit
fi

# lower case: buildah names an image pulled from oci-archive:PATH after PATH
work=/tmp/kiln-bdiff-$$; rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
store="$work/store"
broot=(--root "$work/buildah" --runroot "$work/buildah-run" --storage-driver vfs)
B() { buildah "${broot[@]}" "$@"; }
if ! import_busybox root "$store" "$work"; then
  tap_not_ok "import the busybox base into kiln"; tap_done; exit
fi
# The same base for buildah: kiln's own busybox image, through an OCI archive.
kiln_as root "$store" save --format oci-archive -o "$work/base.tar" busybox >/dev/null 2>&1 &&
  B pull -q "oci-archive:$work/base.tar" >"$work/base.id" 2>"$work/base.err" &&
  B tag "$(cat "$work/base.id")" localhost/busybox:latest >/dev/null 2>>"$work/base.err" ||
  { tap_not_ok "load the busybox base into buildah"; diag <"$work/base.err"; tap_done; exit; }
echo "# $(buildah --version)"

for dir in "$CASES_DIR"/*/; do
  dir=${dir%/}; name=$(basename "$dir")
  [ -n "$ONLY" ] && [ "$name" != "$ONLY" ] && continue
  [ -f "$dir/fail" ] && continue  # error cases: nothing to compare
  ctx="$work/ctx-$name"; rm -rf "$ctx"; mkdir -p "$ctx"
  [ -d "$dir/context" ] && cp -a "$dir/context/." "$ctx/"
  if [ -f "$dir/setup" ]; then (cd "$ctx" && bash "$dir/setup") || { tap_not_ok "$name: setup failed"; continue; }; fi
  flags=()
  [ -f "$dir/flags" ] && read -r -a flags <"$dir/flags"
  if ! kiln_as root "$store" build -q -f "$dir/Containerfile" -t "diff-$name" "${flags[@]}" "$ctx" \
      >/dev/null 2>"$work/$name.kerr"; then
    tap_not_ok "$name: kiln build failed"; diag <"$work/$name.kerr"; continue
  fi
  if ! B bud -q --isolation chroot -f "$dir/Containerfile" -t "localhost/diff-$name" \
      "${flags[@]}" "$ctx" >/dev/null 2>"$work/$name.berr"; then
    tap_skip "$name: buildah $(buildah --version | awk '{print $3}') cannot build it: $(grep -m1 -i 'error' "$work/$name.berr" | cut -c1-160)"
    continue
  fi
  kout="$work/k-$name"; bout="$work/b-$name"; mkdir -p "$kout" "$bout"
  kiln_as root "$store" save --format oci-archive -o "$work/k-$name.tar" "diff-$name" 2>"$work/$name.kerr" &&
    python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$work/k-$name.tar" "$kout" 2>>"$work/$name.kerr" ||
    { tap_not_ok "$name: save/flatten kiln's image"; diag <"$work/$name.kerr"; continue; }
  B push -q "localhost/diff-$name" "oci-archive:$work/b-$name.tar" 2>"$work/$name.berr" &&
    python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$work/b-$name.tar" "$bout" 2>>"$work/$name.berr" ||
    { tap_not_ok "$name: save/flatten buildah's image"; diag <"$work/$name.berr"; continue; }
  if python3 "$KILN_SOURCE_ROOT/tests/integration/flatdiff.py" "$kout" "$bout" "$dir/buildah-differences" \
      >"$work/$name.diff"; then
    tap_ok "$name: same tree and config as buildah"
  else
    tap_not_ok "$name: differs from buildah"; diag <"$work/$name.diff"
  fi
  rm -rf "$kout" "$bout" "$work/k-$name.tar" "$work/b-$name.tar"
done
[ -n "$ONLY" ] && [ "$ONLY" != rows ] && { tap_done; exit; }  # KILN_CASE=rows: only the rows below

# ---------------------------------------------------------------------------
# Rows whose flags name things a case directory cannot hold (a host volume,
# a loopback server, a manifest list): each builds with kiln and buildah and
# compares the images as above (compare NAME KILN-IMAGE BUILDAH-IMAGE [ALLOWED]).
compare() {
  local name=$1 kimg=$2 bimg=$3 allowed=${4:-/dev/null} kout="$work/k-$1" bout="$work/b-$1"
  mkdir -p "$kout" "$bout"
  kiln_as root "$store" save --format oci-archive -o "$work/k-$name.tar" "$kimg" 2>"$work/$name.kerr" &&
    python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$work/k-$name.tar" "$kout" 2>>"$work/$name.kerr" ||
    { tap_not_ok "$name: save/flatten kiln's image"; diag <"$work/$name.kerr"; return 1; }
  B push -q "$bimg" "oci-archive:$work/b-$name.tar" 2>"$work/$name.berr" &&
    python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$work/b-$name.tar" "$bout" 2>>"$work/$name.berr" ||
    { tap_not_ok "$name: save/flatten buildah's image"; diag <"$work/$name.berr"; return 1; }
  python3 "$KILN_SOURCE_ROOT/tests/integration/flatdiff.py" "$kout" "$bout" "$allowed" >"$work/$name.diff"
}
row() {  # row NAME CONTEXT FLAGS... : kiln build and buildah bud with the same flags, then compare
  local name=$1 ctx=$2; shift 2
  if ! kiln_as root "$store" build -q -t "row-$name" "$@" "$ctx" >/dev/null 2>"$work/$name.kerr"; then
    tap_not_ok "$name: kiln build failed"; diag <"$work/$name.kerr"; return 1
  fi
  if ! B bud -q --isolation chroot -t "localhost/row-$name" "$@" "$ctx" >/dev/null 2>"$work/$name.berr"; then
    tap_not_ok "$name: buildah bud failed"; diag <"$work/$name.berr"; return 1
  fi
  if compare "$name" "row-$name" "localhost/row-$name" "$work/$name.allowed"; then
    tap_ok "$name: same tree and config as buildah"
  else
    tap_not_ok "$name: differs from buildah"; diag <"$work/$name.diff"
  fi
}

# -v/--volume for RUN: both read the host file and write through to the host; the mount point's
# parent is made by both; neither puts the volume's files into the image.
mkdir -p "$work/vol-ctx" "$work/vol-k" "$work/vol-b"
echo from-host >"$work/vol-k/in"; echo from-host >"$work/vol-b/in"
printf 'FROM busybox\nRUN cat /mnt/vol/in >/seen && echo written >/mnt/vol/out\n' >"$work/vol-ctx/Containerfile"
printf 'path %s buildah 1.28 keeps the empty mount point of -v (and the parent it made) in the image; kiln, as BuildKit does for its mounts, leaves no trace of a RUN mount\n' /mnt /mnt/vol >"$work/volume.allowed"
if kiln_as root "$store" build -q -t row-volume -v "$work/vol-k:/mnt/vol" "$work/vol-ctx" >/dev/null 2>"$work/volume.kerr" &&
   B bud -q --isolation chroot -t localhost/row-volume -v "$work/vol-b:/mnt/vol" "$work/vol-ctx" >/dev/null 2>"$work/volume.berr"; then
  if compare volume row-volume localhost/row-volume "$work/volume.allowed" &&
     [ "$(cat "$work/vol-k/out")" = written ] && [ "$(cat "$work/vol-b/out")" = written ] &&
     [ "$(cat "$work/k-volume/list" | grep -c '^/mnt/vol/')" = 0 ]; then
    tap_ok "volume: -v HOST:/mnt/vol: same image as buildah (/seen from the host), writes reach the host in both"
  else
    tap_not_ok "volume: differs from buildah"; diag <"$work/volume.diff"
  fi
else
  tap_not_ok "volume: a build failed"; cat "$work/volume.kerr" "$work/volume.berr" | diag
fi

# A loopback HTTP server for ADD URL and a URL build context.
mkdir -p "$work/www/t" "$work/url-ctx"
echo downloaded >"$work/www/file.txt"; touch -d '2024-01-02 03:04:05 UTC' "$work/www/file.txt"
echo in-tar >"$work/www/t/f"; tar czf "$work/www/ctx.tar.gz" -C "$work/www/t" f
printf 'FROM busybox\nCOPY f /f\n' >"$work/www/t/Containerfile"; tar czf "$work/www/main.tar.gz" -C "$work/www/t" f Containerfile
port=$(free_port)
(cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 "$port") >"$work/http.log" 2>&1 &
HTTP_PID=$!
trap 'kill $HTTP_PID 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/file.txt" >/dev/null 2>&1 && break; sleep 0.1; done
H="http://127.0.0.1:$port"

# --retry/--retry-delay with ADD URL: the same file (mode, mtime) as buildah's.
printf 'FROM busybox\nADD %s/file.txt /f.txt\n' "$H" >"$work/url-ctx/Containerfile"
row retry "$work/url-ctx" --retry 2 --retry-delay 1s

# A URL build context (a .tar.gz on the server) read by COPY --from.
mkdir -p "$work/urlctx-ctx"
printf 'FROM busybox\nCOPY --from=web f /from-web\n' >"$work/urlctx-ctx/Containerfile"
row url-context "$work/urlctx-ctx" --build-context "web=$H/ctx.tar.gz"

# The main context as the URL of a tarball.
row url-main-context "$H/main.tar.gz"

# --manifest: the image joins a manifest list of its platform in both; a second build of another
# image for the same platform replaces kiln's entry and is appended by buildah (docs/compatibility.md).
mkdir -p "$work/man-ctx"
printf 'FROM busybox\nRUN echo one >/m\n' >"$work/man-ctx/Containerfile"
row manifest "$work/man-ctx" --manifest localhost/rowlist
kl=$(kiln_as root "$store" manifest inspect localhost/rowlist 2>&1 | jq -r '[.manifests[] | .platform.os + "/" + .platform.architecture] | join(",")')
bl=$(B manifest inspect localhost/rowlist 2>&1 | jq -r '[.manifests[] | .platform.os + "/" + .platform.architecture] | join(",")')
printf 'FROM busybox\nRUN echo two >/m\n' >"$work/man-ctx/Containerfile"
kiln_as root "$store" build -q --manifest localhost/rowlist "$work/man-ctx" >/dev/null 2>&1
B bud -q --isolation chroot --manifest localhost/rowlist "$work/man-ctx" >/dev/null 2>&1
kl2=$(kiln_as root "$store" manifest inspect localhost/rowlist 2>&1 | jq '.manifests | length')
bl2=$(B manifest inspect localhost/rowlist 2>&1 | jq '.manifests | length')
if [ "$kl" = "$bl" ] && [ "$kl" = "linux/$(dpkg --print-architecture)" ] && [ "$kl2" = 1 ] && [ "$bl2" = 2 ]; then
  tap_ok "manifest: --manifest gives the same list as buildah ($kl); a second build of the platform: kiln replaces (1 entry), buildah appends (2; docs/compatibility.md)"
else
  tap_not_ok "manifest lists: kiln '$kl' then $kl2 entries, buildah '$bl' then $bl2"
fi

# A git repository as the build context (git daemon on loopback), with a SUBDIR.
if command -v git >/dev/null; then
  gs="$work/gitsrc"; mkdir -p "$gs/app" "$work/gitsrv"
  printf 'FROM busybox\nCOPY . /ctx\n' >"$gs/app/Containerfile"; echo a >"$gs/app/a"; echo top >"$gs/top"
  git -C "$gs" -c init.defaultBranch=main init -q && git -C "$gs" add -A &&
    git -C "$gs" -c user.name=t -c user.email=t@t commit -qm one && git clone -q --bare "$gs" "$work/gitsrv/repo.git"
  start_git_daemon "$work/gitsrv" repo.git
  GIT_PID=$REG_PID
  trap 'kill $HTTP_PID $GIT_PID 2>/dev/null; rm -rf "$work"' EXIT
  row git-context "$GITD/repo.git#main:app"
fi
tap_done
