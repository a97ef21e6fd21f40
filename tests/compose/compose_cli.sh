#!/usr/bin/env bash
# kiln compose config through the real binary: the course's project found by
# its default file name, .env interpolation, the YAML of docker compose
# config, --format json, -q, --services/--volumes, --profile, -f merging,
# -p, --env-file, errors with file:line:column (exit 2, also from up). As the unprivileged test user and as
# root (TAP); no store, no container.
set -u
export KILN_TEST_USER=${KILN_TEST_USER:-kiln-test}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

TD=$KILN_TESTDATA/compose/course
for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  proj=$work/course
  mkdir -p "$proj"
  cp "$TD/compose.yaml" "$proj/compose.yaml"
  cp "$TD/env" "$proj/.env"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$proj"
  kc() { (cd "$proj" && as_mode "$mode" env KILN_ROOT="$work/store" "$KILN_BIN" compose "$@"); }

  # The golden file was made with /proj/myapp and WEB_PORT=8088 (tests/compose/compose_test.cpp).
  want=$(sed -e "s|/proj/myapp|$proj|g" -e 's/"8088"/"8080"/' "$TD/config.yaml" | grep -v -e '^  backup:' )
  out=$(kc config 2>"$work/err"); rc=$?
  # backup is in the golden file (made with --profile tools): compare with it.
  out_tools=$(kc --profile tools config 2>/dev/null)
  if [ $rc = 0 ] && [ "$out_tools" = "$(sed -e "s|/proj/myapp|$proj|g" -e 's/"8088"/"8080"/' "$TD/config.yaml")" ]; then
    tap_ok "$mode: compose --profile tools config prints the resolved project (compose.yaml and .env found in the directory)"
  else tap_not_ok "$mode: compose config (rc $rc)"; diff <(echo "$out_tools") <(sed -e "s|/proj/myapp|$proj|g" -e 's/"8088"/"8080"/' "$TD/config.yaml") | diag; diag <"$work/err"; fi
  if grep -qx '      POSTGRES_PASSWORD: secret' <<<"$out" && grep -qx '        GREETING: hi there' <<<"$out" &&
     ! grep -q '^  backup:' <<<"$out"; then tap_ok "$mode: .env values interpolated; the profile-only service left out without --profile"
  else tap_not_ok "$mode: interpolation/profile"; diag <<<"$out"; fi
  if grep -qx "kiln: warning: $proj/compose.yaml:4:1: version: the attribute \`version\` is obsolete, it will be ignored" "$work/err"; then
    tap_ok "$mode: version: is ignored with docker's warning, naming file:line:column"
  else tap_not_ok "$mode: version warning"; diag <"$work/err"; fi

  out=$(as_mode "$mode" env WEB_PORT=9999 sh -c "cd '$proj' && '$KILN_BIN' compose config --format json" 2>/dev/null)
  if jq -e '.name == "course" and .services.web.ports[0].published == "9999" and .services.web.ports[0].target == 80
            and .services.db.healthcheck.retries == 5 and .volumes["db-data"].name == "course_db-data"' <<<"$out" >/dev/null; then
    tap_ok "$mode: --format json; the shell's variable wins over .env"
  else tap_not_ok "$mode: --format json"; diag <<<"$out"; fi

  out=$(kc config -q 2>&1); rc=$?
  if [ $rc = 0 ] && ! grep -v '^kiln: warning' <<<"$out" | grep -q .; then tap_ok "$mode: config -q prints nothing, exit 0"
  else tap_not_ok "$mode: -q (rc $rc)"; diag <<<"$out"; fi
  s=$(kc config --services 2>/dev/null | tr '\n' ' '); v=$(kc config --volumes 2>/dev/null)
  st=$(kc --profile tools config --services 2>/dev/null | tr '\n' ' ')
  if [ "$s" = "db web " ] && [ "$v" = db-data ] && [ "$st" = "backup db web " ]; then
    tap_ok "$mode: --services, --volumes, --profile tools"
  else tap_not_ok "$mode: --services '$s' --volumes '$v' --profile '$st'"; fi

  cat >"$proj/prod.yaml" <<'YML'
services:
  web:
    ports: ["443:443"]
    environment:
      DB_PORT: "6543"
YML
  printf 'DB_USER=produser\nDB_PASSWORD=prodpw\n' >"$proj/prod.env"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$proj/prod.yaml" "$proj/prod.env"
  out=$(kc -f compose.yaml -f prod.yaml -p shop --env-file prod.env config --format json 2>"$work/err")
  if jq -e '.name == "shop" and (.services.web.ports | length) == 2 and .services.web.environment.DB_PORT == "6543"
            and .services.db.environment.POSTGRES_USER == "produser" and .networks.default.name == "shop_default"' \
       <<<"$out" >/dev/null; then tap_ok "$mode: -f files merged in order, -p, --env-file instead of .env"
  else tap_not_ok "$mode: -f/-p/--env-file"; diag <<<"$out"; diag <"$work/err"; fi

  printf 'services:\n  web:\n    image: busybox\n    ports: ["80:http"]\n' >"$proj/bad.yaml"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$proj/bad.yaml"
  kc -f bad.yaml config >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 2 ] && grep -qx "kiln: error: $proj/bad.yaml:4:13: services.web.ports\[0\]: invalid port \"80:http\": .*" "$work/err"; then
    tap_ok "$mode: an invalid port: exit 2, file:line:column and the key"
  else tap_not_ok "$mode: bad port (rc $rc)"; diag <"$work/err"; fi
  kc -p Bad config >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 2 ] && grep -q 'invalid project name "Bad"' "$work/err"; then tap_ok "$mode: -p with upper case: exit 2"
  else tap_not_ok "$mode: -p Bad (rc $rc)"; diag <"$work/err"; fi
  (cd "$work" && as_mode "$mode" "$KILN_BIN" compose config >/dev/null 2>"$work/err"); rc=$?
  if [ $rc = 2 ] && grep -q "no compose file found in $work" "$work/err"; then tap_ok "$mode: no compose file: exit 2, named"
  else tap_not_ok "$mode: no file (rc $rc)"; diag <"$work/err"; fi
  sed 's/^DB_PASSWORD=.*//' "$TD/env" >"$proj/.env"
  kc config >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 2 ] && grep -q "compose.yaml:33:9: services.db.environment\[1\]: required variable DB_PASSWORD is missing a value: set DB_PASSWORD in .env" "$work/err"; then
    tap_ok "$mode: \${VAR:?err} unset: exit 2 with the message and position"
  else tap_not_ok "$mode: required variable (rc $rc)"; diag <"$work/err"; fi

  kc up -d >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 2 ] && grep -q "compose.yaml:33:9: services.db.environment\[1\]: required variable DB_PASSWORD" "$work/err" &&
     ! [ -d "$work/store/containers" ]; then tap_ok "$mode: compose up with a required variable unset: exit 2 before anything is made"
  else tap_not_ok "$mode: compose up (rc $rc)"; diag <"$work/err"; fi
  rm -rf "$work"
done
tap_done
