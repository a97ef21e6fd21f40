#!/usr/bin/env bash
# Compose files written for other tools (awesome-compose and compose-spec
# examples, adapted to offline busybox images: testdata/compose/replay/*)
# replayed through kiln compose, as the unprivileged test user and as root
# (TAP). Each either runs -- `up -d --wait` starts every service, ps shows
# them running, `down -v` leaves no container, network or volume -- or fails
# with a message naming the unsupported key, as its `expect` file says; the
# keys kiln leaves out are named in warnings.
set -u
export KILN_TEST_USER=${KILN_TEST_USER:-kiln-test}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

TD=$KILN_TESTDATA/compose/replay
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
  rm -rf "$work"
done
tap_done
