#!/usr/bin/env bash
# Compose files written for other tools (awesome-compose and compose-spec
# examples, adapted to offline busybox images: testdata/compose/replay/*)
# replayed through kiln compose, as the unprivileged test user and as root
# (TAP). Each either runs -- `up -d --wait` starts every service, ps shows
# them running, `down -v` leaves no container, network or volume -- or fails
# with a message naming the unsupported key, as its `expect` file says; the
# keys kiln leaves out are named in warnings. And compose build + push to a
# loopback docker-registry, compose pull into another store.
set -u
export KILN_TEST_USER=${KILN_TEST_USER:-kiln-test}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

TD=$KILN_TESTDATA/compose/replay
REG= REG_PID= regdir=
if command -v docker-registry >/dev/null; then
  regdir=$(mktemp -d /tmp/kiln-compose-reg.XXXXXX)
  start_registry "$regdir" || { tap_not_ok "start docker-registry"; diag <"$regdir/registry.log"; REG=; }
else
  tap_skip "compose push/pull: docker-registry is not installed (Debian package docker-registry)"
fi
for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  k() { as_mode "$mode" env KILN_ROOT="$work/store" "$KILN_BIN" "$@"; }
  import_busybox "$mode" "$work/store" "$work" || { tap_not_ok "$mode: import busybox"; continue; }
  for dir in "$TD"/*/; do
    case=$(basename "$dir")
    proj=$work/$case
    cp -r "$dir" "$proj"
    [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$proj"
    kc() { (cd "$proj" && as_mode "$mode" env KILN_ROOT="$work/store" "$KILN_BIN" compose -p "r$case" "$@"); }
    expect=$(head -1 "$proj/expect")
    kc up -d --wait >"$work/out" 2>"$work/err"; rc=$?
    warned=yes
    while read -r what regex; do
      [ "$what" = warns ] || continue
      grep -Eq "(warning|WARN).*$regex" "$work/err" || { warned="no warning naming $regex"; }
    done <"$proj/expect"
    if [ "$expect" = runs ]; then
      services=$(kc config --services 2>/dev/null | sort | tr '\n' ' ')
      running=$(kc ps --format json 2>/dev/null | jq -r 'map(select(.State == "running") | .Service) | sort | join(" ")')
      if [ $rc = 0 ] && [ "$running " = "$services" ] && [ "$warned" = yes ]; then
        tap_ok "$mode: $case runs (services: $running)"
      else tap_not_ok "$mode: $case (rc $rc, running '$running', want '$services', $warned)"; diag <"$work/err"; fi
    else
      regex=${expect#fails }
      if [ $rc != 0 ] && grep -Eq "kiln: error: .*$regex" "$work/err" && [ "$warned" = yes ] &&
         [ -z "$(kc ps -a -q 2>/dev/null)" ]; then
        tap_ok "$mode: $case fails naming the unsupported key ($(grep -m1 'kiln: error' "$work/err" | cut -c1-100))"
      else tap_not_ok "$mode: $case should fail naming '$regex' (rc $rc)"; diag <"$work/err"; fi
    fi
    kc down -v >/dev/null 2>"$work/down.err"; drc=$?
    if [ $drc != 0 ] || [ -n "$(k ps -a -q --filter label=com.docker.compose.project="r$case" 2>/dev/null)" ] ||
       k network ls --format '{{.Name}}' 2>/dev/null | grep -q "^r${case}_"; then
      tap_not_ok "$mode: $case: down -v (rc $drc) left something"; diag <"$work/down.err"
    fi
  done

  # build, push and pull through a loopback registry (docker-registry).
  if [ -n "$REG" ]; then
    proj=$work/pushpull
    mkdir -p "$proj"
    printf 'services:\n  web:\n    build: .\n    image: %s/compose/web%s:1\n' "$REG" "$mode" >"$proj/compose.yaml"
    printf 'FROM busybox\nRUN echo pushed >/hi\nCMD ["cat", "/hi"]\n' >"$proj/Containerfile"
    printf 'services:\n  web:\n    image: %s/compose/web%s:1\n' "$REG" "$mode" >"$proj/pull.yaml"
    [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$proj"
    kp() { (cd "$proj" && as_mode "$mode" env KILN_ROOT="$work/$1" "$KILN_BIN" compose "${@:2}"); }
    kp store build -q >/dev/null 2>"$work/err" && kp store push 2>>"$work/err"; rc=$?
    tags=$(curl -s "http://$REG/v2/compose/web$mode/tags/list")
    if [ $rc = 0 ] && [ "$tags" = "{\"name\":\"compose/web$mode\",\"tags\":[\"1\"]}" ]; then
      tap_ok "$mode: compose build + push sends the built image to its image: name"
    else tap_not_ok "$mode: compose push (rc $rc) tags '$tags'"; diag <"$work/err"; fi
    kp store2 -f pull.yaml pull 2>"$work/err"; rc=$?
    out=$(kp store2 -f pull.yaml run --rm web 2>>"$work/err")
    if [ $rc = 0 ] && [ "$out" = pushed ]; then tap_ok "$mode: compose pull brings it into another store (run --rm prints its file)"
    else tap_not_ok "$mode: compose pull (rc $rc) out '$out'"; diag <"$work/err"; fi
    kp store2 -f pull.yaml down >/dev/null 2>&1
  fi
  rm -rf "$work"
done
[ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
[ -n "$regdir" ] && rm -rf "$regdir"
tap_done
