# Shared by the ingest cases of the security suite (tests/security/cases/
# h18_*, h22_*, h24_*, h25_*, h26_*, h27_*, x05_*): invoked as
# `bash CASE MODE WORKDIR`; exit 0 contained, 1 not contained (why on
# stderr), 77 skipped.
MODE=${1:?MODE}
WORK=${2:?WORKDIR}
source "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
HI="$KILN_SOURCE_ROOT/tests/store/hostile_images.py"
STORE=$WORK/store
mkdir -p "$STORE"
chown --reference="$WORK" "$STORE" 2>/dev/null
kiln_as "$MODE" "$STORE" images >/dev/null 2>&1  # the store exists before the first refusal

not_contained() { echo "not contained: $*" >&2; exit 1; }
skip() { echo "skipped: $*" >&2; exit 77; }

# make_image KIND TARGET VARIANT [BUSYBOX]; then info KEY
make_image() {
  python3 "$HI" "$@" >"$WORK/info" 2>"$WORK/mkerr" || { cat "$WORK/mkerr" >&2; skip "cannot make the image"; }
  chmod -R a+rX "$2" 2>/dev/null
  return 0
}
info() { sed -n "s/^$1=//p" "$WORK/info"; }

busybox_tar() {
  [ -f "$WORK/busybox.tar" ] || "$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$WORK/busybox.tar" >/dev/null ||
    skip "cannot make the busybox rootfs"
  chmod 644 "$WORK/busybox.tar"
}

# expect_refused PATTERN ARGS...: kiln ARGS fails within 120 s, stderr
# matches PATTERN, index.json is byte for byte unchanged, prune --check clean.
expect_refused() {
  local pattern=$1; shift
  local before after rc
  before=$(cat "$STORE/index.json" 2>/dev/null | sha256sum)
  as_mode "$MODE" env KILN_ROOT="$STORE" timeout 120 "$KILN_BIN" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
  rc=$?
  after=$(cat "$STORE/index.json" 2>/dev/null | sha256sum)
  [ "$rc" -eq 124 ] && not_contained "kiln $* did not finish within 120 s"
  [ "$rc" -eq 0 ] && not_contained "kiln $* was accepted"
  grep -qE -- "$pattern" "$WORK/err" || not_contained "kiln $*: error does not match '$pattern': $(cat "$WORK/err")"
  [ "$before" = "$after" ] || not_contained "kiln $* changed index.json: $(cat "$STORE/index.json")"
  kiln_as "$MODE" "$STORE" prune --check >"$WORK/check" 2>&1 || not_contained "prune --check after kiln $*: $(cat "$WORK/check")"
  return 0
}

# pull_and_load_refused VARIANT PATTERN: the image VARIANT is refused both
# as a layout (`pull oci:`) and as an archive (`load -i`), each with
# expect_refused PATTERN; {KEY} in PATTERN is replaced by `info KEY`.
pull_and_load_refused() {
  local v=$1 pat=$2 key
  make_image layout "$WORK/$v" "$v"
  while [[ $pat =~ \{([a-z0-9_]+)\} ]]; do
    key=${BASH_REMATCH[1]}
    pat=${pat//\{$key\}/$(info "$key")}
  done
  expect_refused "$pat" pull -q "oci:$WORK/$v"
  make_image archive "$WORK/$v.tar" "$v"
  expect_refused "$pat" load -q -i "$WORK/$v.tar"
}

# small_store MiB: the store on a tmpfs of that size (made by root, chowned
# to the test user in user mode); skips when we are not root. Sets MNT.
small_store() {
  [ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
  MNT=$WORK/small
  mkdir -p "$MNT"
  mount -t tmpfs -o "size=${1}m,mode=0755" tmpfs "$MNT" || skip "cannot mount a tmpfs"
  trap 'umount -l "$MNT" 2>/dev/null' EXIT
  [ "$MODE" = user ] && chown "$KILN_TEST_USER" "$MNT"
  STORE=$MNT/store
  kiln_as "$MODE" "$STORE" images >/dev/null 2>&1 || not_contained "cannot open a store on the tmpfs"
}

# enospc_error: the last error names ENOSPC and a path in the store
enospc_error() {
  grep -qi "no space left on device" "$WORK/err" || not_contained "error does not say no space left on device: $(cat "$WORK/err")"
  grep -q "$MNT" "$WORK/err" || not_contained "error does not name the path: $(cat "$WORK/err")"
}
