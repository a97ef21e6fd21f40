#!/usr/bin/env bash
# The course's application through kiln compose, offline, as the
# unprivileged test user and as root (TAP): testdata/compose/app -- web
# built from the Containerfile in the project directory (busybox httpd, a
# page fetched through -p), db (a busybox stand-in serving TCP 5432, with a
# health check) holding its value in a named volume. Checks: config prints
# the interpolated model; up -d waits for db healthy before web starts and
# web reaches db by name; ps, exec, logs -f (prefixed, ends when the
# project stops); the volume's data survives down + up and goes with
# down -v; run --rm backup (a profile-only service) returns its exit code;
# up again leaves unchanged containers alone and recreates a changed one;
# foreground up stops the project on SIGINT; the labels docker compose puts.
set -u
export KILN_TEST_USER=${KILN_TEST_USER:-kiln-test}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

TD=$KILN_TESTDATA/compose/app
fetch() { curl -s --max-time 5 "http://127.0.0.1:$port/$1"; }
# fetch_wait PATH: the page once httpd answers (it starts after web has asked db), at most 10 s
fetch_wait() { local v; for _ in $(seq 100); do v=$(fetch "$1") && [ -n "$v" ] && break; sleep 0.1; done; echo "$v"; }
# gate_yaml RETRIES FILE: db whose health check fails (RETRIES times before
# unhealthy), web waiting for it to be healthy.
gate_yaml() {
  printf '%s\n' 'services:' '  db:' '    image: busybox' '    command: ["sleep", "600"]' \
    "    healthcheck: {test: [\"CMD\", \"false\"], interval: 1s, retries: $1}" '  web:' '    image: busybox' \
    '    command: ["sleep", "600"]' '    depends_on: {db: {condition: service_healthy}}' >"$2"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$2"
}
# up_attached OUT ERR ARGS...: `kiln compose ARGS... up` in the background in
# its own session (so that SIGINT reaches the group as Ctrl-C would); sets upid.
up_attached() {
  local out=$1 err=$2; shift 2
  (cd "$proj" && exec setsid env KILN_ROOT="$work/store" WEB_PORT="$port" APP_NAME="$name" \
     $( [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && echo runuser -u "$KILN_TEST_USER" -- env XDG_RUNTIME_DIR= HOME=/tmp ) \
     "$KILN_BIN" compose "$@" up) >"$out" 2>"$err" &
  upid=$!
}
# interrupt_up: SIGINT to it; sets uprc to its exit status (or "alive" after 10 s, then KILL).
interrupt_up() {
  kill -INT -- -$upid 2>/dev/null
  for _ in $(seq 100); do kill -0 $upid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $upid 2>/dev/null; then kill -KILL -- -$upid; uprc=alive; else wait $upid; uprc=$?; fi
}

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  proj=$work/app
  mkdir -p "$proj"
  cp "$TD/compose.yaml" "$TD/Containerfile" "$proj/"
  cp "$TD/env" "$proj/.env"
  port=$(free_port)
  name=app$$$mode
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$proj"
  kc() { (cd "$proj" && as_mode "$mode" env KILN_ROOT="$work/store" WEB_PORT="$port" APP_NAME="$name" "$KILN_BIN" compose "$@"); }
  k() { as_mode "$mode" env KILN_ROOT="$work/store" "$KILN_BIN" "$@"; }
  import_busybox "$mode" "$work/store" "$work" || { tap_not_ok "$mode: import busybox"; continue; }

  # config: the interpolated model (.env, the shell's WEB_PORT, $$ kept).
  out=$(kc config 2>"$work/err"); rc=$?
  if [ $rc = 0 ] && grep -qx "name: $name" <<<"$out" && grep -qx "        published: \"$port\"" <<<"$out" &&
     grep -qx '      POSTGRES_PASSWORD: secret' <<<"$out" && grep -qx '        GREETING: welcome' <<<"$out" &&
     ! grep -q '^  backup:' <<<"$out"; then tap_ok "$mode: compose config prints the interpolated model"
  else tap_not_ok "$mode: compose config (rc $rc)"; diag <<<"$out"; diag <"$work/err"; fi

  # up -d: web built, db healthy before web starts, web reaches db by name.
  t0=$(date +%s.%N)
  kc up -d >"$work/up.out" 2>"$work/up.err"; rc=$?
  t1=$(date +%s.%N)
  page=$(fetch_wait index.html); dbv=$(fetch db.txt)
  if [ $rc = 0 ] && [ "$page" = "<h1>welcome from the course app</h1>" ]; then
    tap_ok "$mode: up -d builds web from the Containerfile (build arg from .env) and serves the page through -p"
  else tap_not_ok "$mode: up -d (rc $rc) page '$page'"; diag <"$work/up.err"; fi
  if [ "$dbv" = first ]; then tap_ok "$mode: web reached db by name once db was healthy (db.txt = first)"
  else tap_not_ok "$mode: web -> db by name: db.txt '$dbv'"; kc logs 2>&1 | diag; fi
  if grep -q "Container $name-db-1  Healthy" "$work/up.err" &&
     [ "$(grep -n "Container $name-db-1  Healthy" "$work/up.err" | cut -d: -f1)" -lt \
       "$(grep -n "Container $name-web-1  Creating" "$work/up.err" | cut -d: -f1)" ]; then
    tap_ok "$mode: web is created only after db is reported healthy"
  else tap_not_ok "$mode: start order"; diag <"$work/up.err"; fi
  web_started=$(k inspect --format '{{.State.StartedAt}}' "$name-web-1" 2>/dev/null)
  db_health=$(k inspect --format '{{.State.Health.Status}}' "$name-db-1" 2>/dev/null)
  if [ "$db_health" = healthy ] && [ -n "$web_started" ]; then tap_ok "$mode: db is healthy, web running"
  else tap_not_ok "$mode: db health '$db_health' web started '$web_started'"; fi

  # The names and labels docker compose uses.
  labels=$(k inspect --format '{{json .Config.Labels}}' "$name-web-1" 2>/dev/null)
  if jq -e --arg p "$name" '.["com.docker.compose.project"] == $p and .["com.docker.compose.service"] == "web"
        and .["com.docker.compose.container-number"] == "1" and .["com.docker.compose.oneoff"] == "False"' \
        <<<"$labels" >/dev/null && k network exists "${name}_default"; then
    tap_ok "$mode: containers <project>-<service>-1 labelled com.docker.compose.project/service, network <project>_default"
  else tap_not_ok "$mode: labels/network"; diag <<<"$labels"; k network ls 2>&1 | diag; fi

  # ps
  out=$(kc ps 2>&1); rc=$?
  if [ $rc = 0 ] && grep -q "^$name-db-1 .* db .*Up (healthy)" <<<"$out" && grep -q "^$name-web-1 .* web .*Up" <<<"$out" &&
     [ "$(kc ps --services 2>/dev/null | tr '\n' ' ')" = "db web " ] &&
     [ "$(kc ps --format json 2>/dev/null | jq -r 'map(.Service + ":" + .State) | join(",")')" = "db:running,web:running" ]; then
    tap_ok "$mode: ps lists both services (db healthy), --services, --format json"
  else tap_not_ok "$mode: ps (rc $rc)"; diag <<<"$out"; fi

  # exec: a command in db's container; its exit code comes back.
  out=$(kc exec -T db cat /data/value 2>&1); rc=$?
  kc exec -T db sh -c 'exit 7' >/dev/null 2>&1; rc7=$?
  if [ $rc = 0 ] && [ "$out" = first ] && [ $rc7 = 7 ]; then tap_ok "$mode: exec runs in the service's container (exit code passed on)"
  else tap_not_ok "$mode: exec rc $rc '$out' rc7 $rc7"; fi

  # top: the service's processes.
  out=$(kc top db 2>&1); rc=$?
  if [ $rc = 0 ] && grep -qx "$name-db-1" <<<"$out" && grep -q "nc -ll -p 5432 -e cat /data/value" <<<"$out"; then
    tap_ok "$mode: top lists the processes of the service's container"
  else tap_not_ok "$mode: top (rc $rc)"; diag <<<"$out"; fi

  # up again: nothing changed, nothing recreated.
  id_before=$(k inspect --format '{{.Id}}' "$name-db-1" 2>/dev/null)
  kc up -d >/dev/null 2>"$work/up2.err"; rc=$?
  id_after=$(k inspect --format '{{.Id}}' "$name-db-1" 2>/dev/null)
  if [ $rc = 0 ] && [ "$id_before" = "$id_after" ] && grep -q "Container $name-db-1  Running" "$work/up2.err"; then
    tap_ok "$mode: up again leaves unchanged running containers alone"
  else tap_not_ok "$mode: idempotent up (rc $rc)"; diag <"$work/up2.err"; fi

  # The volume's data survives down + up.
  kc exec -T db sh -c 'echo persisted >/data/value' >/dev/null 2>&1
  kc down >"$work/down.out" 2>"$work/down.err"; rc=$?
  left=$(k ps -a --format '{{.Names}}' 2>/dev/null | grep -c "^$name-")
  if [ $rc = 0 ] && [ "$left" = 0 ] && ! k network exists "${name}_default" && k volume inspect "${name}_data" >/dev/null 2>&1; then
    tap_ok "$mode: down removes the containers and the network, keeps the named volume"
  else tap_not_ok "$mode: down (rc $rc, $left left)"; diag <"$work/down.err"; fi
  kc up -d >/dev/null 2>"$work/up3.err"; rc=$?
  dbv=$(fetch_wait db.txt)
  if [ $rc = 0 ] && [ "$dbv" = persisted ]; then tap_ok "$mode: the named volume's data survives down + up"
  else tap_not_ok "$mode: volume after down+up (rc $rc) db.txt '$dbv'"; diag <"$work/up3.err"; fi

  # run --rm backup: a profile-only service, its exit code, removed after.
  out=$(kc run --rm backup 2>"$work/run.err"); rc=$?
  left=$(k ps -a --format '{{.Names}}' 2>/dev/null | grep -c "^$name-backup-run-")
  if [ $rc = 3 ] && [ "$out" = "backup of persisted" ] && [ "$left" = 0 ]; then
    tap_ok "$mode: run --rm backup (profile-only) prints its output, returns its exit code 3, leaves no container"
  else tap_not_ok "$mode: run --rm backup rc $rc out '$out' left $left"; diag <"$work/run.err"; fi
  out=$(kc run --rm db sh -c 'echo one-off; exit 0' 2>/dev/null); rc=$?
  if [ $rc = 0 ] && [ "$out" = one-off ]; then tap_ok "$mode: run --rm SERVICE CMD runs CMD instead of the service's command"
  else tap_not_ok "$mode: run CMD rc $rc out '$out'"; fi

  # logs: prefixed with the container; -f follows until the project stops.
  out=$(kc logs 2>&1)
  if grep -q "^$name-db-1 *| db listening" <<<"$out" && grep -q "^$name-web-1 *| web started" <<<"$out" &&
     [ "$(kc logs --no-log-prefix db 2>/dev/null | grep -c 'db listening')" -ge 1 ]; then
    tap_ok "$mode: logs prints each service's lines prefixed with its container (--no-log-prefix, SERVICE)"
  else tap_not_ok "$mode: logs"; diag <<<"$out"; fi
  kc logs -f >"$work/logs-f.out" 2>&1 &
  lpid=$!
  sleep 1
  kc exec -T db sh -c 'echo late line >/proc/1/fd/1' >/dev/null 2>&1
  kc stop >"$work/stop.err" 2>&1; src=$?
  for _ in $(seq 50); do kill -0 $lpid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $lpid 2>/dev/null; then kill $lpid; lrc=alive; else wait $lpid; lrc=$?; fi
  states=$(kc ps -a --format json 2>/dev/null | jq -r 'map(.State) | unique | join(",")')
  if [ "$lrc" = 0 ] && [ $src = 0 ] && [ "$states" = exited ] && grep -q "^$name-db-1 *| db listening" "$work/logs-f.out"; then
    tap_ok "$mode: logs -f follows and ends when stop has stopped every service"
  else tap_not_ok "$mode: logs -f (rc $lrc) stop rc $src states '$states'"; diag <"$work/logs-f.out"; diag <"$work/stop.err"; fi
  kc start >/dev/null 2>"$work/start.err"; rc=$?
  dbv=$(fetch_wait db.txt)
  if [ $rc = 0 ] && [ "$dbv" = persisted ]; then tap_ok "$mode: start starts the stopped project again (db first)"
  else tap_not_ok "$mode: start rc $rc db.txt '$dbv'"; diag <"$work/start.err"; fi

  # A changed service is recreated, the other left alone.
  web_id=$(k inspect --format '{{.Id}}' "$name-web-1" 2>/dev/null); db_id=$(k inspect --format '{{.Id}}' "$name-db-1" 2>/dev/null)
  (cd "$proj" && as_mode "$mode" env KILN_ROOT="$work/store" WEB_PORT="$port" APP_NAME="$name" DB_PASSWORD=changed "$KILN_BIN" compose up -d) >/dev/null 2>"$work/up4.err"; rc=$?
  if [ $rc = 0 ] && [ "$(k inspect --format '{{.Id}}' "$name-db-1" 2>/dev/null)" != "$db_id" ] &&
     [ "$(k inspect --format '{{.Id}}' "$name-web-1" 2>/dev/null)" = "$web_id" ] && grep -q "Container $name-db-1  Recreate" "$work/up4.err"; then
    tap_ok "$mode: up after a change recreates the changed service only"
  else tap_not_ok "$mode: recreate (rc $rc)"; diag <"$work/up4.err"; fi

  # Without the file: -p NAME finds the project by its labels (ps, logs).
  out=$( (cd "$work" && as_mode "$mode" env KILN_ROOT="$work/store" "$KILN_BIN" compose -p "$name" ps --services) 2>&1)
  lout=$( (cd "$work" && as_mode "$mode" env KILN_ROOT="$work/store" "$KILN_BIN" compose -p "$name" logs db) 2>&1)
  if [ "$(tr '\n' ' ' <<<"$out")" = "db web " ] && grep -q "^$name-db-1 *| db listening" <<<"$lout"; then
    tap_ok "$mode: ps and logs -p NAME without the compose file find the project by its labels"
  else tap_not_ok "$mode: -p NAME without a file"; diag <<<"$out"; diag <<<"$lout"; fi

  # down -v removes the named volume.
  kc down -v >/dev/null 2>"$work/downv.err"; rc=$?
  if [ $rc = 0 ] && ! k volume inspect "${name}_data" >/dev/null 2>&1 && [ "$(k ps -a --format '{{.Names}}' | grep -c "^$name-")" = 0 ]; then
    tap_ok "$mode: down -v removes the containers and the named volume"
  else tap_not_ok "$mode: down -v (rc $rc)"; diag <"$work/downv.err"; fi

  # Foreground up: prefixed logs, SIGINT stops the project.
  up_attached "$work/fg.out" "$work/fg.err"
  for _ in $(seq 100); do [ "$(fetch db.txt)" = first ] && break; sleep 0.2; done
  interrupt_up; frc=$uprc
  states=$(kc ps -a --format json 2>/dev/null | jq -r 'map(.State) | unique | join(",")')
  if [ "$frc" = 130 ] && [ "$states" = exited ] && grep -q "^$name-web-1 *| web started" "$work/fg.out" &&
     grep -q "Gracefully stopping" "$work/fg.err" && grep -qx "Attaching to $name-db-1, $name-web-1" "$work/fg.out" &&
     grep -q "^$name-web-1 exited with code" "$work/fg.out"; then
    tap_ok "$mode: foreground up attaches the prefixed logs and stops the project on SIGINT (exit 130)"
  else tap_not_ok "$mode: foreground up (rc $frc) states '$states'"; diag <"$work/fg.out"; diag <"$work/fg.err"; fi
  kc down -v >/dev/null 2>&1

  # Ctrl-C while up waits for a dependency: what started is stopped.
  gate_yaml 100 "$proj/slow.yaml"
  up_attached "$work/slow.out" "$work/slow.err" -f slow.yaml -p "slow$name"
  for _ in $(seq 100); do grep -q "slow$name-db-1  Waiting" "$work/slow.err" && break; sleep 0.1; done
  interrupt_up; src=$uprc
  states=$(kc -f slow.yaml -p "slow$name" ps -a --format json 2>/dev/null | jq -r 'map(.Service + ":" + .State) | join(",")')
  if [ "$src" = 130 ] && [ "$states" = "db:exited" ]; then
    tap_ok "$mode: Ctrl-C while up waits for a healthy dependency stops what started (exit 130, web never created)"
  else tap_not_ok "$mode: Ctrl-C during start (rc $src) states '$states'"; diag <"$work/slow.err"; fi
  kc -f slow.yaml -p "slow$name" down >/dev/null 2>&1

  # Errors: an unknown service, a dependency that never gets healthy.
  out=$(kc up -d nosuch 2>&1); rc=$?
  if [ $rc = 2 ] && grep -q "no such service: nosuch" <<<"$out"; then tap_ok "$mode: up of an unknown service: exit 2 naming it"
  else tap_not_ok "$mode: unknown service rc $rc"; diag <<<"$out"; fi
  gate_yaml 2 "$proj/bad.yaml"
  out=$(kc -f bad.yaml -p "bad$name" up -d 2>&1); rc=$?
  webs=$(k ps -a --format '{{.Names}}' | grep -c "^bad$name-web-1")
  if [ $rc != 0 ] && grep -q "dependency failed to start: container bad$name-db-1 is unhealthy" <<<"$out" && [ "$webs" = 0 ]; then
    tap_ok "$mode: an unhealthy dependency fails up, naming it, and the dependent is not started"
  else tap_not_ok "$mode: unhealthy dependency rc $rc webs $webs"; diag <<<"$out"; fi
  out=$(kc -f bad.yaml -p "bad$name" up -d --wait db 2>&1); rc=$?
  if [ $rc != 0 ] && grep -q "container bad$name-db-1 is unhealthy" <<<"$out"; then
    tap_ok "$mode: up --wait fails when a service turns unhealthy (podman-compose#1534)"
  else tap_not_ok "$mode: up --wait unhealthy rc $rc"; diag <<<"$out"; fi
  (cd "$work" && as_mode "$mode" env KILN_ROOT="$work/store" "$KILN_BIN" compose -p "bad$name" down) >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 0 ] && [ -z "$(k ps -a -q --filter label=com.docker.compose.project="bad$name")" ] &&
     ! k network exists "bad${name}_default"; then
    tap_ok "$mode: down -p NAME without the compose file removes the project's containers and network (by label)"
  else tap_not_ok "$mode: down -p without a file (rc $rc)"; diag <"$work/err"; fi

  rm -rf "$work"
done
tap_done
