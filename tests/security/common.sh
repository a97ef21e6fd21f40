# Helpers for tests/security/cases/*.sh (source it first thing):
#   . "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
# Sets MODE, WORK, STORE; k ARGS... runs kiln as the mode's user on STORE.
# run_k / expect_fail / expect_ok keep the last command's output in
# $WORK/out and $WORK/err; not_contained / skip end the case.
MODE=$1
WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
SEC_DIR=$KILN_SOURCE_ROOT/tests/security
STORE=$WORK/store
export PYTHONPATH=$SEC_DIR${PYTHONPATH:+:$PYTHONPATH}
cd "$WORK" || exit 1

k() { kiln_as "$MODE" "$STORE" "$@"; }
not_contained() { echo "NOT CONTAINED ($MODE): $*" >&2; exit 1; }
skip() { echo "$*" >&2; exit 77; }
known_hole() { echo "KNOWN HOLE: $*" >&2; exit 77; }
# own PATH...: hand files the case made (as root) to the mode's user
own() { if [ "$MODE" = user ] && [ "$(id -u)" -eq 0 ]; then chown -R "$KILN_TEST_USER" "$@"; fi; }

# need_busybox [skip]: the offline busybox base as localhost/busybox in
# STORE; the case fails (with `skip`: is skipped) when it cannot be made.
need_busybox() {
  import_busybox "$MODE" "$STORE" "$WORK" && return 0
  [ "${1:-}" = skip ] && skip "skip: cannot make or import the busybox image"
  echo "cannot import the busybox base" >&2
  exit 1
}
# containerfile: $WORK/Containerfile from stdin and an empty context
# $WORK/ctx, both readable by the mode's user (build with -f Containerfile ctx).
containerfile() {
  mkdir -p "$WORK/ctx" && chmod a+rx "$WORK/ctx"
  cat >"$WORK/Containerfile" && chmod 644 "$WORK/Containerfile"
}
# run_k ARGS...: kiln as the mode's user; RC, $WORK/out, $WORK/err
run_k() {
  k "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  return 0
}
# run_k_timeout SECS ARGS...: run_k bounded in time (RC 124 or 137 when killed)
run_k_timeout() {
  local secs=$1; shift
  as_mode "$MODE" env KILN_ROOT="$STORE" timeout -k 5 "$secs" "$KILN_BIN" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  return 0
}
show() { echo "--- exit $RC; stdout:"; head -c 2000 "$WORK/out"; echo "--- stderr:"; head -c 2000 "$WORK/err"; }
# expect_fail NEEDLE ARGS...: kiln ARGS must fail (exit 1 or 2, not a crash)
# and say NEEDLE (a grep -E pattern) on stderr
expect_fail() {
  local needle=$1; shift
  run_k "$@"
  if [ "$RC" -eq 0 ]; then show >&2; not_contained "kiln $* succeeded"; fi
  if [ "$RC" -ge 124 ]; then show >&2; not_contained "kiln $* exited $RC (crash or set-up failure)"; fi
  if ! grep -Eq -- "$needle" "$WORK/err"; then show >&2; not_contained "kiln $*: stderr does not say /$needle/"; fi
  return 0
}
expect_ok() {
  run_k "$@"
  if [ "$RC" -ne 0 ]; then show >&2; not_contained "kiln $* failed"; fi
  return 0
}
# The error is one clear line: no more than a few lines, no stack trace.
# ERROR_LINES_ONLY=1: count only the "error" lines (warnings may precede them).
expect_short_error() {
  local n
  if [ -n "${ERROR_LINES_ONLY:-}" ]; then n=$(grep -ci 'error' "$WORK/err"); else n=$(grep -c . "$WORK/err"); fi
  if [ "$n" -gt "${1:-4}" ]; then show >&2; not_contained "error output is $n lines"; fi
  return 0
}
# prune_check: the store is consistent (`kiln prune --check`)
prune_check() {
  if [ ! -d "$STORE" ]; then return 0; fi
  if ! k prune --check >"$WORK/check.out" 2>&1; then
    cat "$WORK/check.out" >&2
    not_contained "prune --check reports a damaged store"
  fi
}

# Victim tree beside the store (the victim-tree check of docs/security.md, "What a case checks"): a directory
# the mode's user can write, so an escape would really land there.
VICTIM=$WORK/victim
make_victim() {
  mkdir -p "$VICTIM/dir"
  echo "hello $$" >"$VICTIM/hello"
  echo "secret" >"$VICTIM/dir/secret"
  chmod 0700 "$VICTIM/dir"
  chmod 0640 "$VICTIM/dir/secret"
  touch -d @1000000 "$VICTIM/dir" "$VICTIM/hello"
  own "$VICTIM"
  snapshot >"$WORK/victim.before"
}
snapshot() {
  (cd "$VICTIM" && find . -printf '%p %y %i %n %m %s %T@ %U %G %l\n' | sort &&
    find . -type f -exec sha256sum {} + | sort)
}
check_victim() {
  snapshot >"$WORK/victim.after"
  if ! cmp -s "$WORK/victim.before" "$WORK/victim.after"; then
    diff "$WORK/victim.before" "$WORK/victim.after" >&2
    not_contained "HOST PATH WAS CHANGED: the victim directory $VICTIM differs"
  fi
}

# mkpy: python3 with mkhostile importable (the code on stdin; argv after -)
mkpy() { python3 - "$@"; }

# Hostile layers reach the store by several CLI paths; a case names them:
#   import   `kiln import` of one tar: busybox's entries, then the layer's
#   oci      `kiln pull oci:DIR` of a layout: busybox layer + hostile layer
#   archive  `kiln load -i FILE` of the same layout as an oci-archive
#   ociarch  `kiln pull oci-archive:FILE`
#   add      `ADD layer.tar /` in a `kiln build` on the busybox base
# deliver VIA LAYER[,LAYER2...]: puts the image localhost/h-VIA (busybox plus LAYER, an
# uncompressed tar) into the store and runs `true` in it (the layer is
# unpacked at the latest there). Sets RC, STAGE (the failing command:
# deliver or run; "" when all succeeded), IMG; output in $WORK/out, $WORK/err.
deliver() {
  local via=$1 layer=$2 f l largs=()
  for l in ${layer//,/ }; do largs+=(--layer "$l"); done
  IMG=localhost/h-$via:latest
  STAGE=deliver
  case $via in
    import | oci | archive | ociarch)
      f=$WORK/img-$via
      rm -rf "$f" "$f.layout"
      python3 "$SEC_DIR/mkhostile.py" image --via "${via/ociarch/archive}" --busybox "$WORK/busybox.tar" \
        "${largs[@]}" --out "$f" --ref "$IMG" || { RC=99; echo "mkhostile failed" >"$WORK/err"; return 0; }
      own "$f"
      case $via in
        import) run_k import "$f" "$IMG" ;;
        oci) run_k pull "oci:$f" ;;
        archive) run_k load -i "$f" ;;
        ociarch) run_k pull "oci-archive:$f" ;;
      esac ;;
    add)
      have_busybox || return 0
      rm -rf "$WORK/ctx-add"; mkdir -p "$WORK/ctx-add"
      printf 'FROM busybox\n' >"$WORK/ctx-add/Containerfile"
      local i=0
      for l in ${layer//,/ }; do
        i=$((i + 1)); cp "$l" "$WORK/ctx-add/layer$i.tar"
        printf 'ADD layer%d.tar /\n' "$i" >>"$WORK/ctx-add/Containerfile"
      done
      printf 'RUN true\n' >>"$WORK/ctx-add/Containerfile"
      own "$WORK/ctx-add"
      run_k build -q -t "$IMG" "$WORK/ctx-add" ;;
    *) echo "deliver: unknown VIA $via" >&2; exit 1 ;;
  esac
  [ "$RC" -eq 0 ] || return 0
  STAGE=run
  run_k run --rm --network none "$IMG" true
  [ "$RC" -eq 0 ] || return 0
  STAGE=
}
have_busybox() {
  [ -n "${BUSYBOX_IMPORTED:-}" ] && return 0
  if ! import_busybox "$MODE" "$STORE" "$WORK" 2>"$WORK/err"; then RC=99; STAGE=deliver; return 1; fi
  BUSYBOX_IMPORTED=1
}
# in_image CMD...: runs CMD in the last delivered image; output in $WORK/out
in_image() {
  run_k run --rm --network none "$IMG" "$@"
  if [ "$RC" -ne 0 ]; then show >&2; not_contained "run $IMG $* failed"; fi
  return 0
}
# in_image_prints WANT WHAT CMD...: CMD in the last delivered image must
# print exactly WANT, else the case is not contained (WHAT says why).
in_image_prints() {
  local want=$1 what=$2
  shift 2
  in_image "$@"
  [ "$(cat "$WORK/out")" = "$want" ] || { show >&2; not_contained "$what"; }
}
# refused VIA LAYER NEEDLE: the layer must be refused (at delivery or first
# run) with an error matching NEEDLE (grep -E), exit 1, 2 or 125 (not a crash),
# a consistent store, no half-unpacked layer left in tmp/, the victim unchanged.
refused() {
  local via=$1 layer=$2 needle=$3
  deliver "$via" "$layer"
  if [ -z "$STAGE" ]; then show >&2; not_contained "$via: the hostile layer was accepted and runs"; fi
  if [ "$RC" -eq 99 ]; then cat "$WORK/err" >&2; echo "could not make the image" >&2; exit 1; fi
  case $RC in
    1 | 2 | 125) ;;
    *) show >&2; not_contained "$via: kiln exited $RC at $STAGE (a crash or a timeout, not a clear error)" ;;
  esac
  if ! grep -Eq -- "$needle" "$WORK/err"; then show >&2; not_contained "$via: the error at $STAGE does not say /$needle/"; fi
  expect_short_error 6
  no_staging_left
  prune_check
  [ ! -d "$VICTIM" ] || check_victim
}
# accepted VIA LAYER: delivery and a first run must succeed
accepted() {
  deliver "$1" "$2"
  if [ -n "$STAGE" ]; then show >&2; not_contained "$1: kiln failed at $STAGE on a layer it should accept"; fi
  return 0
}
no_staging_left() {
  local left
  left=$(find "$STORE/tmp" -mindepth 1 -maxdepth 1 -name 'layer-*' 2>/dev/null | head -3)
  [ -z "$left" ] || not_contained "a half-unpacked layer is left in the store: $left"
}

# start_hostile BEHAVIOUR LAYOUT [mkhostile serve args...]: serves the OCI
# layout as a registry on 127.0.0.1 that misbehaves as BEHAVIOUR says
# (mkhostile.py Handler). Sets HREG (host:port) and HPID; requests are logged
# to $WORK/server.log (with any Authorization header as "AUTH <server> ...").
start_hostile() {
  local b=$1 layout=$2
  shift 2
  rm -f "$WORK/port"
  python3 "$SEC_DIR/mkhostile.py" serve --layout "$layout" --behaviour "$b" --port-file "$WORK/port" \
    --log "$WORK/server.log" "$@" >"$WORK/server.out" 2>&1 &
  HPID=$!
  trap 'kill $HPID 2>/dev/null; wait 2>/dev/null' EXIT
  for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  [ -s "$WORK/port" ] || { cat "$WORK/server.out" >&2; echo "the hostile server did not start" >&2; exit 1; }
  HREG=127.0.0.1:$(cat "$WORK/port")
}
