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
tap_done
