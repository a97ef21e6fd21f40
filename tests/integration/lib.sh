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

# import_busybox MODE STORE WORKDIR: the offline base image "busybox"
import_busybox() {
  local mode=$1 store=$2 work=$3
  if [ ! -f "$work/busybox.tar" ]; then
    "$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$work/busybox.tar" >/dev/null || return 1
    chmod 644 "$work/busybox.tar"
  fi
  kiln_as "$mode" "$store" import "$work/busybox.tar" busybox >/dev/null
}

# start_registry DIR: Debian's docker-registry on an ephemeral loopback port
# (plain HTTP), its storage and log under DIR. Sets REG (host:port) and
# REG_PID (kill it when done). Returns 1 when it does not answer.
start_registry() {
  local dir=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
