# Shared helpers for the shell integration tests (TAP). Source it.
# Needs KILN_BIN; uses KILN_TEST_USER (an unprivileged user with subordinate
# id ranges) when run as root.
set -u
KILN_BIN=${KILN_BIN:?KILN_BIN not set}
KILN_SOURCE_ROOT=${KILN_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TAP_N=0
TAP_FAILED=0

tap_ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $*"; }
tap_not_ok() { TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1)); echo "not ok $TAP_N - $*"; }
tap_skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $* # SKIP"; }
tap_done() { echo "1..$TAP_N"; [ "$TAP_FAILED" -eq 0 ]; }
diag() { sed 's/^/# /' >&2; }

# check DESCRIPTION COMMAND...: a TAP line, ok when the command succeeds
check() {
  local desc=$1; shift
  if "$@"; then tap_ok "$desc"; else tap_not_ok "$desc"; fi
}

# check_refused DESCRIPTION RC TEXT FILE: a TAP line, ok when RC is 2 (an
# invalid input) and FILE has TEXT (a fixed string); FILE is shown if not
check_refused() {
  if [ "$2" = 2 ] && grep -qF -- "$3" "$4"; then tap_ok "$1"; else tap_not_ok "$1 (rc=$2)"; diag <"$4"; fi
}

# require_tool COMMAND WHY: the whole test is skipped (one TAP skip line)
# when COMMAND is not installed
require_tool() {
  command -v "$1" >/dev/null && return 0
  tap_skip "$1 is not installed${2:+ ($2)}"; tap_done; exit 0
}

# json_field PYEXPR: evaluates on the JSON read from stdin as `j`
json_field() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

# begin_mode MODE: for one mode of a test: work (a new workdir), store, k
# (kiln as MODE on store) and the busybox image in the store; a "not ok"
# and status 1 when the image cannot be imported.
begin_mode() {
  mode=$1
  work=$(make_workdir "$mode")
  store="$work/store"
  k() { kiln_as "$mode" "$store" "$@"; }
  import_busybox "$mode" "$store" "$work" && return 0
  tap_not_ok "$mode: import busybox"
  return 1
}

# begin_mode_here MODE: as begin_mode, but in $w = $work/MODE under the
# test's temp_workdir (removed at exit), with k running kiln without
# XDG_RUNTIME_DIR (the run root under the store's defaults).
begin_mode_here() {
  mode=$1
  w=$work/$mode
  mkdir -p "$w"
  chmod 755 "$w"
  if [ "$mode" = user ] && [ "$(id -u)" -eq 0 ]; then chown "$KILN_TEST_USER" "$w"; fi
  store=$w/store
  k() { XDG_RUNTIME_DIR= kiln_as "$mode" "$store" "$@"; }
  import_busybox "$mode" "$store" "$work" && return 0
  tap_not_ok "$mode: import busybox"
  return 1
}

# wait_for SECONDS COMMAND...: retries every 0.1 s until the command succeeds
wait_for() {
  local t=$1 i; shift
  for i in $(seq $((t * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# fetch PORT [PATH]: the body served on 127.0.0.1:PORT at PATH (default
# /index.html), retried while the server starts
fetch() {
  local i out
  for i in $(seq 50); do
    out=$(python3 - "$1" "${2:-/index.html}" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"GET " + sys.argv[2].encode() + b" HTTP/1.0\r\n\r\n")
data = b"".join(iter(lambda: s.recv(65536), b""))
print(data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip())
PY
) && [ -n "$out" ] && { echo "$out"; return 0; }
    sleep 0.1
  done
  return 1
}

# as_user MODE CMD...: MODE is "root" or "user". As "user" (when we are
# root) the command runs as $KILN_TEST_USER with a login-like environment.
as_mode() {
  local mode=$1; shift
  if [ "$mode" = user ] && [ "$(id -u)" -eq 0 ]; then
    runuser -u "$KILN_TEST_USER" -- env HOME="$(getent passwd "$KILN_TEST_USER" | cut -d: -f6)" \
      XDG_RUNTIME_DIR= "$@"
  else
    "$@"
  fi
}

# modes to test: "user root" as root, "user" otherwise
test_modes() {
  if [ "$(id -u)" -eq 0 ]; then
    if [ -n "${KILN_TEST_USER:-}" ] && id "$KILN_TEST_USER" >/dev/null 2>&1; then echo "user root"; else echo root; fi
  else
    echo user
  fi
}

# make_workdir MODE: a temp dir the mode's user owns
make_workdir() {
  local d
  d=$(mktemp -d /tmp/kiln-it.XXXXXX)
  chmod 755 "$d"
  if [ "$1" = user ] && [ "$(id -u)" -eq 0 ]; then chown "$KILN_TEST_USER" "$d"; fi
  echo "$d"
}

# kiln_as MODE STORE ARGS...
kiln_as() {
  local mode=$1 store=$2; shift 2
  as_mode "$mode" env KILN_ROOT="$store" SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-}" "$KILN_BIN" "$@"
}

# kiln_pid_under PID: the kiln process at PID or below it (as_mode's runuser
# and env in between), to send it a signal
kiln_pid_under() {
  local p=$1 _
  for _ in 1 2 3; do
    [ "$(readlink /proc/$p/exe 2>/dev/null)" = "$(readlink -f "$KILN_BIN")" ] && break
    p=$(cat /proc/$p/task/$p/children 2>/dev/null | awk '{print $1}')
  done
  echo "$p"
}

# import_busybox MODE STORE WORKDIR: the offline base image "busybox"
import_busybox() {
  local mode=$1 store=$2 work=$3
  if [ ! -f "$work/busybox.tar" ]; then
    "$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$work/busybox.tar" >/dev/null || return 1
    chmod 644 "$work/busybox.tar"
  fi
  kiln_as "$mode" "$store" import "$work/busybox.tar" busybox >/dev/null
}

# free_port: an ephemeral TCP port on 127.0.0.1 (free when asked)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# serve_dir DIR FILE: python's http.server for DIR on 127.0.0.1, on a free
# port (sets port and srv; killed at exit). Returns 1 when FILE is not
# served within 5 s.
serve_dir() {
  port=$(free_port)
  python3 -m http.server --bind 127.0.0.1 --directory "$1" "$port" >/dev/null 2>&1 &
  srv=$!
  trap 'kill $srv 2>/dev/null' EXIT
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/$2" >/dev/null && return 0; sleep 0.1; done
  return 1
}

# start_git_daemon BASE REPO: `git daemon` exporting the repositories under
# BASE on a free loopback port; sets GITD (git://127.0.0.1:PORT) and REG_PID
# (cleanup_workdir kills it). Returns 1 when BASE/REPO is not served within 10 s.
start_git_daemon() {
  local port
  port=$(free_port)
  git daemon --reuseaddr --export-all --base-path="$1" --listen=127.0.0.1 --port="$port" "$1" 2>"$1.daemon.log" &
  REG_PID=$!
  GITD=git://127.0.0.1:$port
  for _ in $(seq 100); do git ls-remote "$GITD/$2" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# git_mode_setup MODE SRC: for the ADD-from-git tests, a work dir (w), its
# store (s) with busybox, a copy of SRC the mode's user owns at $w/srv (git's
# safe.directory rule; F=file://$w/srv), $w/c, and build_add NAME ADD-ARGS
# (FROM busybox + ADD ARGS into image NAME, output in $w/out) and runc.
git_mode_setup() {
  mode=$1; w=$(make_workdir "$mode"); s="$w/store"; F="file://$w/srv"
  import_busybox "$mode" "$s" "$w" || return 1
  cp -a "$2" "$w/srv"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$w/srv"
  as_mode "$mode" mkdir -p "$w/c"
}
build_add() {
  local name=$1; shift
  as_mode "$mode" sh -c "printf 'FROM busybox\nADD %s\n' '$*' >'$w/c/Containerfile'"
  kiln_as "$mode" "$s" build --progress plain -t "$name" "$w/c" >"$w/out" 2>&1
}
runc() { kiln_as "$mode" "$s" run --rm --network none "$@" 2>&1; }

# start_registry DIR: Debian's docker-registry on an ephemeral loopback port
# (plain HTTP), its storage and log under DIR. Sets REG (host:port) and
# REG_PID (kill it when done). Returns 1 when it does not answer.
start_registry() {
  local dir=$1 port
  port=$(free_port)
  REG=127.0.0.1:$port
  cat >"$dir/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/registry}}
http: {addr: $REG}
YML
  docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && return 0; sleep 0.1; done
  return 1
}

# temp_workdir NAME: a fresh /tmp/kiln-NAME.XXXXXX in $work (mode 755, so
# the test user reaches it), removed at exit together with the registry
# start_registry started there, if any.
temp_workdir() {
  work=$(mktemp -d "/tmp/kiln-$1.XXXXXX")
  chmod 755 "$work"
  REG_PID=
  trap cleanup_workdir EXIT
}
cleanup_workdir() {
  [ "$BASHPID" = "$$" ] || return 0  # not from a subshell of the test
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}

# registry_workdir NAME: temp_workdir NAME with a docker-registry started in
# it (REG, REG_PID); the whole suite is skipped when docker-registry is not
# installed, and fails when it does not start.
registry_workdir() {
  if ! command -v docker-registry >/dev/null; then
    tap_skip "docker-registry is not installed (Debian package docker-registry)"; tap_done; exit
  fi
  temp_workdir "$1"
  start_registry "$work" || { tap_not_ok "start docker-registry"; diag <"$work/registry.log"; tap_done; exit; }
}

# Emulated arm64 (multi-platform builds and farms): the binfmt_misc entry of
# qemu-aarch64 with the F flag.
ARM64_MAGIC=7f454c460201010000000000000000000200b700
BINFMT=/proc/sys/fs/binfmt_misc

# The arm64 binfmt_misc entry (name) whose magic is aarch64's, or nothing.
arm64_entry() {
  local f
  for f in "$BINFMT"/*; do
    [ -f "$f" ] || continue
    grep -q "^magic $ARM64_MAGIC" "$f" 2>/dev/null && grep -q '^enabled' "$f" && { echo "$f"; return; }
  done
}

# Make sure an arm64 handler with the F and P flags exists (registering one
# as root). Without P (preserve argv[0]) busybox's shell runs its applets as
# /proc/self/exe with argv[0] lost: `RUN cat /f` then runs /f as a script.
# Debian's qemu-user-static registers qemu-aarch64-static through its
# aarch64-binfmt-P name, which makes qemu take the preserved argv[0].
ensure_arm64_handler() {
  if [ ! -e "$BINFMT/status" ] && [ "$(id -u)" -eq 0 ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
  fi
  local e
  e=$(arm64_entry)
  if [ -n "$e" ] && grep -q '^flags:.*F' "$e" && grep -q '^flags:.*P' "$e"; then return 0; fi
  [ "$(id -u)" -eq 0 ] || { [ -n "$e" ] && grep -q '^flags:.*F' "$e"; return; }
  local qemu=/usr/libexec/qemu-binfmt/aarch64-binfmt-P flags=FP
  if [ ! -x "$qemu" ]; then
    qemu=$(command -v qemu-aarch64-static || true); flags=F
  fi
  [ -n "$qemu" ] || return 1
  [ -n "$e" ] && echo -1 >"$e"
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':'"$flags" \
    >"$BINFMT/register" 2>/dev/null || return 1
  e=$(arm64_entry)
  [ -n "$e" ] && grep -q '^flags:.*F' "$e"
}
