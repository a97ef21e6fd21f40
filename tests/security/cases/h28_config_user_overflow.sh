#!/usr/bin/env bash
# H28 through the CLI: image config User "2147483648:0", "4294967296",
# "4294967295", "99999999999999999999" (CVE-2024-40635, CVE-2026-46680).
# Contained: never root; a number out of 0..2^32-2 is refused (never looked up
# as a name); an id outside kiln's user namespace mapping is one clear line,
# not a silent 125 (exit 2, invalid image). Usage: bash FILE MODE WORKDIR.
set -u
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
need_busybox skip
mkdir -p "$WORK/ctx"
own "$WORK/ctx"
fail() { echo "not contained: $*" >&2; exit 1; }

for user in 2147483648:0 4294967296 4294967295 99999999999999999999; do
  printf 'FROM busybox\nUSER %s\n' "$user" >"$WORK/ctx/Containerfile"
  k build -t "u$user" "$WORK/ctx" >"$WORK/out" 2>&1 || fail "build with USER $user failed: $(tail -1 "$WORK/out")"
  out=$(k run --rm --network none "u$user" id -u 2>"$WORK/err"); rc=$?
  [ "$out" = 0 ] && fail "User $user runs as root"
  case "$user" in
    2147483648:0)
      if [ "$MODE" = root ]; then
        [ "$rc" -eq 0 ] && [ "$out" = 2147483648 ] || fail "User $user as root: rc $rc, uid '$out': $(cat "$WORK/err")"
      else
        [ "$rc" -eq 2 ] && grep -q 'uid 2147483648 is not mapped' "$WORK/err" && [ "$(grep -c . "$WORK/err")" -eq 1 ] ||
          fail "User $user rootless: rc $rc, message: $(cat "$WORK/err")"
      fi ;;
    *)
      [ "$rc" -eq 2 ] && grep -q "User $user: uid $user is out of range" "$WORK/err" ||
        fail "User $user: rc $rc, uid '$out', message: $(cat "$WORK/err")" ;;
  esac
done
[ -z "$(k ps -a -q 2>&1)" ] || fail "a container record is left behind"
exit 0
