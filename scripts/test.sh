#!/usr/bin/env bash
# The whole test suite; called by `scripts/dev test` (which installs the
# packages first). Prints per-suite results, the security suite's line
# "hostile inputs: N/52 contained", the BuildKit suite's line "BuildKit cases:
# N/M", then one plain closing line:
#   N passed, N failed, N skipped
set -uo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd)
JOBS=$(nproc)
FUZZ_SECONDS=${KILN_FUZZ_SECONDS:-60}
status=0
extra_pass=0
extra_fail=0

log() { printf '==> %s\n' "$*" >&2; }

# Integration tests run kiln as an unprivileged user with subordinate id
# ranges, as a user on a laptop would. CI runs as root, so make that user.
ensure_test_user() {
  [ "$(id -u)" -eq 0 ] || { export KILN_TEST_USER=$(id -un); return; }
  local u=kiln-test
  if ! id "$u" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$u" || return 1
  fi
  grep -q "^$u:" /etc/subuid 2>/dev/null || echo "$u:200000:65536" >>/etc/subuid
  grep -q "^$u:" /etc/subgid 2>/dev/null || echo "$u:200000:65536" >>/etc/subgid
  export KILN_TEST_USER=$u
}

configure() {  # configure DIR [meson args...]
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; return 1; }
    rm -f "$dir.setup.log"
  else
    # An existing build dir: regenerate first when a meson.build changed, so
    # that `meson compile DIR TARGET` knows targets added since (it looks
    # them up before ninja would regenerate; a new test binary was "not found").
    ninja -C "$dir" build.ninja >/dev/null || return 1
  fi
}

ensure_test_user || log "could not create the test user; unprivileged tests will skip"

log "build/: compile"
if configure build -Dwerror=true && meson compile -C build >&2; then
  log "build/: unit and integration tests"
  rm -f build/security-summary.txt build/buildkit-summary.txt  # written by tests/security/run.sh, tests/buildkit/run.sh
  meson test -C build --num-processes "$JOBS" --print-errorlogs >&2 || status=1
else
  log "build/ failed to compile"; extra_fail=$((extra_fail + 1)); status=1
fi

if [ "${KILN_SKIP_RELEASE:-}" != 1 ]; then
  # What a distribution packager runs (issue [2.11]): a release build with
  # -Werror (kiln's own warnings stay errors), installed into a DESTDIR; the
  # installed kiln must find its installed helper and print its version.
  log "build-release/: --buildtype=release, meson install --destdir"
  dest=$(mktemp -d)
  if configure build-release --buildtype=release -Dwerror=true -Dtests=false &&
      meson compile -C build-release >&2 &&
      meson install -C build-release --destdir "$dest" >"build-release/install.log" 2>&1 &&
      [ -x "$dest/usr/local/bin/kiln" ] && [ -x "$dest/usr/local/libexec/kiln/kiln-sandbox" ] &&
      [ -f "$dest/usr/local/share/man/man1/kiln-build.1" ] &&
      "$dest/usr/local/bin/kiln" version >/dev/null; then
    log "build-release/: ok"; extra_pass=$((extra_pass + 1))
  else
    log "build-release/ failed"; extra_fail=$((extra_fail + 1)); status=1
  fi
  rm -rf "$dest"
fi

if [ "${KILN_SKIP_ASAN:-}" != 1 ]; then
  log "build-asan/: compile with -Db_sanitize=address,undefined"
  # Only the unit-test binaries: the integration suites run the normal build.
  unit_targets=(tests/base/base_test tests/oci/oci_test tests/store/store_test tests/frontend/frontend_test
    tests/engine/engine_test tests/registry/registry_test tests/layer/layer_test tests/format/format_test
    tests/image/image_test tests/rootfs/rootfs_test tests/secret/secret_test)
  # The gtest suites of those binaries, by name: the rest of suite 'unit' are
  # scripts over the normal build (layering, cli-doc) or need a kiln binary.
  unit_tests=(base oci store frontend engine registry layer format image rootfs secret)
  # -Wno-maybe-uninitialized: GCC 12 with -fsanitize reports a false positive
  # inside libstdc++'s <regex>. -O1 -g1 (line tables only) instead of the
  # default -O2 -g: the sanitizers still see everything they see at -O2 and
  # stack traces keep file:line, and the compile takes ~2.4x less time (it
  # was the longest phase of CI: ~15 of ~32 minutes).
  if configure build-asan -Dwerror=true -Dbuildtype=plain -Db_sanitize=address,undefined -Db_lundef=false \
      "-Dcpp_args=['-O1','-g1','-Wno-maybe-uninitialized']" &&
      meson compile -C build-asan "${unit_targets[@]}" >&2; then
    log "build-asan/: unit tests under ASan+UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      meson test -C build-asan --no-rebuild --num-processes "$JOBS" --print-errorlogs "${unit_tests[@]}" >&2 || status=1
  else
    log "build-asan/ failed to compile"; extra_fail=$((extra_fail + 1)); status=1
  fi
fi

if [ "${KILN_SKIP_FUZZ:-}" != 1 ] && command -v clang++-14 >/dev/null; then
  log "build-fuzz/: libFuzzer targets, ${FUZZ_SECONDS}s each"
  fuzz_targets=($(sed -n "s/^ *\(fuzz_[a-z_]*\) *= *executable.*/tests\/fuzz\/\1/p" tests/fuzz/meson.build))
  if CXX=clang++-14 configure build-fuzz -Dwerror=true -Dfuzz=true -Dtests=false -Db_lundef=false &&
      meson compile -C build-fuzz "${fuzz_targets[@]}" >&2; then
    for f in build-fuzz/tests/fuzz/fuzz_*; do
      [ -x "$f" ] && [ -f "$f" ] || continue
      name=$(basename "$f")
      corpus=$(mktemp -d)
      seeds="$TOP/testdata/fuzz/${name#fuzz_}"
      [ -d "$seeds" ] || seeds=
      # testdata/fuzz/NAME.seconds shortens a target's run (never lengthens it)
      secs=$FUZZ_SECONDS
      if [ -f "$TOP/testdata/fuzz/${name#fuzz_}.seconds" ]; then
        own=$(cat "$TOP/testdata/fuzz/${name#fuzz_}.seconds")
        [ "$own" -lt "$secs" ] && secs=$own
      fi
      if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
          "$corpus" $seeds >"build-fuzz/$name.log" 2>&1; then
        execs=$(grep -m1 'stat::number_of_executed_units' "build-fuzz/$name.log" | awk '{print $2}')
        log "fuzz $name: ok, ${execs:-?} executions in ${secs}s"
        extra_pass=$((extra_pass + 1))
      else
        log "fuzz $name: FAILED"; tail -40 "build-fuzz/$name.log" >&2
        extra_fail=$((extra_fail + 1)); status=1
      fi
      rm -rf "$corpus"
    done
  else
    log "build-fuzz/ failed to compile"; extra_fail=$((extra_fail + 1)); status=1
  fi
fi

python3 "$TOP/scripts/test-summary.py" --extra-pass "$extra_pass" --extra-fail "$extra_fail" \
  --note build/security-summary.txt --note build/buildkit-summary.txt \
  build/meson-logs/testlog.junit.xml build-asan/meson-logs/testlog.junit.xml || status=1
exit $status
