#!/usr/bin/env bash
# A container's life beyond run/stop (issue [2.7], docs/run.md, docs/secrets.md):
# run --secret, secret rm of a secret in use, health checks run by the
# monitor, restart policies, kiln restart, kiln events. The real binary, as
# the unprivileged test user and as root (TAP); short intervals keep it fast.
set -u
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store="$work/store"
  k() { kiln_as "$mode" "$store" "$@"; }
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import busybox"
    continue
  fi

  # 1. run --secret
  value="s3cr3t-$RANDOM-$mode"
  printf %s "$value" | k secret create dbpass - >/dev/null
  out=$(k run --rm --secret dbpass busybox sh -c 'cat /run/secrets/dbpass; stat -c " %a %u %g" /run/secrets/dbpass' 2>"$work/err")
  check "$mode: --secret NAME mounts /run/secrets/NAME mode 444 root ($out)" test "$out" = "$value 444 0 0"
  out=$(k run --rm --secret dbpass,target=/etc/app/pw,uid=1000,gid=1000,mode=0400 busybox \
        sh -c 'stat -c "%a %u %g" /etc/app/pw; su -s /bin/sh nobody -c "cat /etc/app/pw" >/dev/null 2>&1 || echo denied' 2>"$work/err")
  check "$mode: target=, uid=, gid=, mode= honoured ($(echo $out))" test "$(echo $out)" = "400 1000 1000 denied"
  out=$(k run --rm --secret dbpass,type=env,target=DB_PASSWORD busybox sh -c 'echo $DB_PASSWORD' 2>"$work/err")
  check "$mode: type=env gives the process the variable" test "$out" = "$value"
  k run -d --name sec1 --secret dbpass,type=env,target=DB_PASSWORD --secret dbpass busybox sleep 30 >/dev/null 2>"$work/err" || diag <"$work/err"
  out=$(k exec sec1 sh -c 'echo $DB_PASSWORD' 2>&1)
  check "$mode: exec sees the env secret too" test "$out" = "$value"
  wait_for 5 k exec sec1 test -f /run/secrets/dbpass
  k inspect sec1 >"$work/inspect.json" 2>&1
  check "$mode: inspect names the secret but never its value" \
    bash -c "grep -q dbpass '$work/inspect.json' && ! grep -q '$value' '$work/inspect.json'"
  # Only the secret store holds the value: not the record, the upper layer,
  # the run-time state or anything else under the store.
  hits=$(as_mode "$mode" grep -rl --exclude-dir=secrets -- "$value" "$store" 2>/dev/null)
  check "$mode: the value is nowhere in the store but secrets/ (${hits:-none})" test -z "$hits"
  k secret rm dbpass >/dev/null 2>"$work/err"; rc=$?
  check "$mode: secret rm of a secret in use is refused (rc $rc: $(cat "$work/err"))" \
    bash -c "[ $rc -ne 0 ] && grep -q 'in use by container sec1' '$work/err'"
  check "$mode: ... and the secret is still there" k secret exists dbpass
  k rm -f sec1 >/dev/null 2>&1
  k run --name sec2 --secret dbpass busybox true >/dev/null 2>&1
  k secret rm -f dbpass >/dev/null 2>"$work/err"; rc=$?
  k secret exists dbpass; still=$?
  check "$mode: secret rm -f removes it anyway (rc $rc, exists $still)" test "$rc" -eq 0 -a "$still" -eq 1
  k start sec2 >/dev/null 2>"$work/err"; rc=$?
  check "$mode: a container whose secret was removed fails to start clearly (rc $rc)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'secret dbpass .* no longer exists' '$work/err'"
  k rm -f sec2 >/dev/null 2>&1
  k run --rm --secret dbpass busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: run --secret of a removed secret fails clearly (rc $rc)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'no secret with name or id \"dbpass\"' '$work/err'"
  k run --rm --secret x,type=env,mode=0400 busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: env secrets take no uid/gid/mode (rc $rc)" bash -c "[ $rc -eq 2 ] && grep -q 'cannot be set with secret type env' '$work/err'"

  # 2. health checks, run by the monitor (no systemd)
  hstate() { k inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null; }
  k run -d --name h1 --network none --health-cmd 'test -f /tmp/ok' --health-interval 1s --health-retries 2 busybox sleep 120 >/dev/null 2>"$work/err" || diag <"$work/err"
  t0=$(date +%s%N)
  check "$mode: health starts as starting" test "$(hstate h1)" = starting
  wait_for 10 bash -c "[ \"\$($(declare -f kiln_as as_mode); kiln_as $mode $store inspect --format '{{.State.Health.Status}}' h1)\" = unhealthy ]"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  check "$mode: a check failing twice at 1s is unhealthy in ${ms} ms (<= 2 s x retries + 1 s, +1 s load margin)" test "$ms" -le 4000 -a "$(hstate h1)" = unhealthy
  check "$mode: ps shows (unhealthy)" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store ps --format '{{.Status}}' --filter name=h1 | grep -q '(unhealthy)\$'"
  streak=$(k inspect h1 | json_field 'str(j[0]["State"]["Health"]["FailingStreak"]) + ":" + str(j[0]["State"]["Health"]["Log"][-1]["ExitCode"])')
  check "$mode: State.Health has Docker's FailingStreak and Log ($streak)" bash -c "[[ '$streak' =~ ^[0-9]+:1\$ ]]"
  k exec h1 touch /tmp/ok
  wait_for 5 bash -c "[ \"\$($(declare -f kiln_as as_mode); kiln_as $mode $store inspect --format '{{.State.Health.Status}}' h1)\" = healthy ]"
  check "$mode: the next passing check makes it healthy" test "$(hstate h1)" = healthy
  check "$mode: ps shows (healthy)" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store ps --format '{{.Status}}' --filter name=h1 | grep -q '(healthy)\$'"
  out=$(k healthcheck run h1 2>&1); rc=$?
  check "$mode: healthcheck run of a passing check: exit 0, no output ($rc: $out)" test "$rc" -eq 0 -a -z "$out"
  k exec h1 rm /tmp/ok
  out=$(k healthcheck run h1 2>&1); rc=$?
  check "$mode: healthcheck run of a failing check: unhealthy, exit 1 ($rc: $out)" test "$rc" -eq 1 -a "$out" = unhealthy
  k run -d --name nohc --network none busybox sleep 60 >/dev/null 2>&1
  k healthcheck run nohc >/dev/null 2>"$work/err"; rc=$?
  check "$mode: healthcheck run without a check: 125, podman's message ($rc)" bash -c "[ $rc -eq 125 ] && grep -q 'has no defined healthcheck' '$work/err'"
  k rm -f h1 nohc >/dev/null 2>&1
  k run -d --name h2 --network none --health-cmd false --health-interval 1s --health-retries 1 --health-on-failure=restart busybox sleep 120 >/dev/null 2>"$work/err" || diag <"$work/err"
  wait_for 10 bash -c "[ \"\$($(declare -f kiln_as as_mode); kiln_as $mode $store inspect --format '{{.RestartCount}}' h2)\" -ge 1 ]"
  out=$(k inspect --format '{{.State.Status}} {{.RestartCount}}' h2)
  check "$mode: --health-on-failure=restart restarts it ($out)" bash -c "[[ '$out' =~ ^(running|restarting)\ [1-9] ]]"
  k rm -f h2 >/dev/null 2>&1
  mkdir -p "$work/hc"
  printf 'FROM busybox\nHEALTHCHECK --interval=1s --timeout=2s CMD test -d /\nCMD ["sleep","120"]\n' >"$work/hc/Containerfile"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/hc"
  k build -q -t hcimg "$work/hc" >/dev/null 2>"$work/err" || diag <"$work/err"
  k run -d --name h3 --network none hcimg >/dev/null 2>"$work/err" || diag <"$work/err"
  wait_for 5 bash -c "[ \"\$($(declare -f kiln_as as_mode); kiln_as $mode $store inspect --format '{{.State.Health.Status}}' h3)\" = healthy ]"
  check "$mode: the image's HEALTHCHECK runs" test "$(hstate h3)" = healthy
  k rm -f h3 >/dev/null 2>&1
  k run -d --name h4 --network none --no-healthcheck hcimg >/dev/null 2>&1
  out=$(k inspect h4 | json_field '"Health" in j[0]["State"]')
  check "$mode: --no-healthcheck disables it ($out)" test "$out" = False
  k rm -f h4 >/dev/null 2>&1

  # 3. restart policies in the monitor
  k run -d --name rf --network none --restart on-failure:2 busybox sh -c 'exit 3' >/dev/null 2>"$work/err" || diag <"$work/err"
  code=$(timeout 30 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store wait rf")
  out=$(k inspect --format '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' rf)
  check "$mode: on-failure:2 restarts twice, then stays exited with its code ($code; $out)" test "$out" = "exited 3 2" -a "$code" = 3
  k run -d --name ra --network none --restart always busybox sleep 120 >/dev/null 2>"$work/err" || diag <"$work/err"
  pid=$(k inspect --format '{{.State.Pid}}' ra)
  child=$(cat /proc/$pid/task/$pid/children 2>/dev/null | awk '{print $1}')
  as_mode "$mode" kill -KILL "$child" 2>/dev/null
  wait_for 10 bash -c "[ \"\$($(declare -f kiln_as as_mode); kiln_as $mode $store inspect --format '{{.State.Status}} {{.RestartCount}}' ra)\" = 'running 1' ]"
  out=$(k inspect --format '{{.State.Status}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}' ra)
  check "$mode: always survives its process killed by SIGKILL ($out)" test "$out" = "running 1 always"
  k stop -t 1 ra >/dev/null 2>&1
  sleep 1
  out=$(k inspect --format '{{.State.Status}}' ra)
  check "$mode: stop stays stopped under --restart always ($out)" test "$out" = exited
  out=$(k restart ra 2>&1)
  check "$mode: kiln restart starts it again ($out)" test "$out" = ra -a "$(k inspect --format '{{.State.Status}}' ra)" = running
  k rm -f ra >/dev/null 2>&1
  k run --rm --restart always busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: --rm with --restart is refused (rc $rc)" test "$rc" -eq 2

  # 4. events
  seq=$(k events --stream=false --filter container=rf --format '{{.Status}}' | tr '\n' ' ')
  check "$mode: events for on-failure:2 ($seq)" test "$seq" = "create start died restart start died restart start died "
  code=$(k events --stream=false --filter container=rf --filter event=died --format json | tail -1 | json_field 'j["ContainerExitCode"]')
  check "$mode: died carries the exit code in podman's JSON ($code)" test "$code" = 3
  hs=$(k events --stream=false --filter event=health_status --format json | head -1 | json_field 'j["Name"]+" "+j["HealthStatus"]')
  check "$mode: health_status events ($hs)" test "$hs" = "h1 unhealthy"
  line=$(k events --stream=false --filter container=rf | head -1)
  check "$mode: the plain line is podman's ($line)" bash -c "[[ '$line' =~ ^[0-9-]+\ [0-9:.]+\ \+0000\ UTC\ container\ create\ [0-9a-f]{64}\ \(image=busybox,\ name=rf ]]"
  out=$(k events --stream=false --since 1h --until 30m | wc -l)
  check "$mode: --since/--until select a window ($out)" test "$out" = 0
  as_mode "$mode" env KILN_ROOT="$store" timeout 5 "$KILN_BIN" events --filter event=start --format '{{.Name}}' >"$work/stream.out" 2>&1 &
  spid=$!
  sleep 1
  k run --rm --name streamed --network none busybox true >/dev/null 2>&1
  wait "$spid"
  check "$mode: events streams new events ($(cat "$work/stream.out"))" grep -qx streamed "$work/stream.out"

  for c in $(k ps -a -q); do k rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$work" 2>/dev/null
done
tap_done
