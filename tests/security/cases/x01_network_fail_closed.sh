#!/usr/bin/env bash
# Issue [2.1] "fail-open network" (no H-id): with no usable slirp4netns/pasta
# the default network of `kiln run` and of build RUN steps must be a private
# namespace with loopback only, never the host's. A host-only service on
# 127.0.0.1 must stay unreachable. As root the helper is made unusable with a
# PATH without it (kiln looks it up in $PATH). Usage: bash FILE MODE WORKDIR.
set -u
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "skip: cannot make or import the busybox image" >&2; exit 77; }
fail() { echo "not contained: $*" >&2; exit 1; }
mkdir -p "$WORK/www" "$WORK/nohelper" "$WORK/ctx"
[ "$MODE" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$WORK/ctx"
echo host-secret >"$WORK/www/secret"
serve_dir "$WORK/www" secret
k() { as_mode "$MODE" env KILN_ROOT="$store" PATH="$WORK/nohelper" "$KILN_BIN" "$@"; }

out=$(k run --rm busybox wget -q -O- "http://127.0.0.1:$port/secret" 2>"$WORK/err")
[ "$out" = host-secret ] && fail "kiln run reads a host-only service on 127.0.0.1"
grep -q 'no usable network helper' "$WORK/err" || fail "no warning about the missing network helper: $(cat "$WORK/err")"
n=$(k run --rm busybox cat /proc/net/dev 2>/dev/null | grep -c ':')
[ "$n" = 1 ] || fail "the container sees $n interfaces, not only lo"
printf 'FROM busybox\nRUN wget -q -O- http://127.0.0.1:%s/secret > /got; true\n' "$port" >"$WORK/ctx/Containerfile"
k build -t leak "$WORK/ctx" >"$WORK/out" 2>&1 || fail "build failed: $(tail -2 "$WORK/out")"
got=$(kiln_as "$MODE" "$store" run --rm --network none leak cat /got 2>/dev/null)
[ "$got" = host-secret ] && fail "a build RUN step reads a host-only service on 127.0.0.1"
exit 0
