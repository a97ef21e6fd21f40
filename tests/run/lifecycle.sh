#!/usr/bin/env bash
# A container's life beyond run/stop (issue [2.7], docs/run.md, docs/secrets.md):
# run --secret, secret rm of a secret in use, health checks run by the
# monitor, restart policies, kiln restart, kiln events. The real binary, as
# the unprivileged test user and as root (TAP); short intervals keep it fast.
set -u
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

# evseq: reads `kiln events --format json` from stdin; prints each event as
# STATUS (died:CODE, health_status:STATUS), space-separated
evseq() {
  python3 -c '
import json, sys
out = []
for line in sys.stdin:
    j = json.loads(line)
    s = j["Status"]
    if "ContainerExitCode" in j: s += ":%d" % j["ContainerExitCode"]
    if j.get("HealthStatus"): s += ":" + j["HealthStatus"]
    out.append(s)
print(" ".join(out))'
}

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
  # A build step that reads the stored secret: not in any layer, config or
  # history of the image, nor in either archive `save` writes (layers
  # decompressed); kiln has no `commit`.
  mkdir -p "$work/sctx"
  printf 'FROM busybox\nRUN --mount=type=secret,id=dbpass cat /run/secrets/dbpass | wc -c >/len\n' >"$work/sctx/Containerfile"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/sctx"
  k build -q -t sbuilt --secret id=dbpass "$work/sctx" >/dev/null 2>"$work/err" || diag <"$work/err"
  out=$(k run --rm --network none sbuilt cat /len 2>&1)
  check "$mode: a build step read the stored secret (${#value} bytes: $out)" test "$out" = "${#value}"
  k save -o "$work/s-docker.tar" sbuilt >/dev/null 2>"$work/err" || diag <"$work/err"
  k save --format oci-archive -o "$work/s-oci.tar" sbuilt >/dev/null 2>"$work/err" || diag <"$work/err"
  # the scanner itself finds a value inside a gzip'ed layer of a tar
  python3 -c 'import io,sys,tarfile,gzip
inner = io.BytesIO(); t = tarfile.open(fileobj=inner, mode="w"); d = sys.argv[1].encode()
i = tarfile.TarInfo("etc/x"); i.size = len(d); t.addfile(i, io.BytesIO(d)); t.close()
z = gzip.compress(inner.getvalue()); o = tarfile.open(sys.argv[2], "w"); i = tarfile.TarInfo("layer.tar.gz"); i.size = len(z)
o.addfile(i, io.BytesIO(z)); o.close()' "$value" "$work/control.tar"
  chmod 644 "$work/control.tar"
  hits=$(as_mode "$mode" python3 "$KILN_SOURCE_ROOT/tests/run/tarscan.py" "$value" "$work/control.tar" 2>&1)
  check "$mode: (the scanner finds a value in a gzip'ed layer: $hits)" bash -c "[[ '$hits' == *layer.tar.gz:etc/x ]]"
  hits=$(as_mode "$mode" python3 "$KILN_SOURCE_ROOT/tests/run/tarscan.py" "$value" "$work/s-docker.tar" "$work/s-oci.tar" 2>&1)
  check "$mode: the value is in no layer, config or history of either saved archive (${hits:-none})" test "$hits" = "scanned 2"
  hits=$(as_mode "$mode" grep -rl --exclude-dir=secrets -- "$value" "$store" 2>/dev/null)
  check "$mode: ... nor anywhere in the store after the build (${hits:-none})" test -z "$hits"
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
  k run -d --name h1 --network none --health-cmd 'test -f /tmp/ok' --health-interval 1s --health-retries 3 busybox sleep 120 >/dev/null 2>"$work/err" || diag <"$work/err"
  t0=$(date +%s%N)
  check "$mode: health starts as starting" test "$(hstate h1)" = starting
  out=$(k wait --condition unhealthy --interval 100ms h1 2>&1)
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  check "$mode: wait --condition unhealthy returns -1 once it is ($out)" test "$out" = -1 -a "$(hstate h1)" = unhealthy
  # The monitor's own clock: from the start event to the unhealthy event.
  ems=$(k events --stream=false --filter container=h1 --format json | python3 -c '
import json, sys, datetime
t = {}
for line in sys.stdin:
    j = json.loads(line)
    key = j["Status"] + (":" + j["HealthStatus"] if j.get("HealthStatus") else "")
    ts = j["Time"].rstrip("Z"); base, _, frac = ts.partition(".")
    sec = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    t.setdefault(key, sec + float("0." + (frac or "0")))
print(int((t["health_status:unhealthy"] - t["start"]) * 1000))' 2>&1)
  check "$mode: a check failing three times at 1s is unhealthy ${ems} ms after the start (<= 1 s x 3 + 1 s; ${ms} ms seen by wait)" \
    bash -c "[ '$ems' -le 4000 ] && [ '$ms' -le 5000 ]"
  check "$mode: ps shows (unhealthy)" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store ps --format '{{.Status}}' --filter name=h1 | grep -q '(unhealthy)\$'"
  streak=$(k inspect h1 | json_field 'str(j[0]["State"]["Health"]["FailingStreak"]) + ":" + str(j[0]["State"]["Health"]["Log"][-1]["ExitCode"])')
  check "$mode: State.Health has Docker's FailingStreak and Log ($streak)" bash -c "[[ '$streak' =~ ^[0-9]+:1\$ ]]"
  k exec h1 touch /tmp/ok
  out=$(timeout 10 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store wait --condition healthy --condition exited h1" 2>&1)
  check "$mode: the next passing check makes it healthy (wait --condition healthy: $out)" test "$(hstate h1)" = healthy -a "$out" = -1
  seq=$(k events --stream=false --filter container=h1 --format json | evseq)
  check "$mode: events --format json for the health check ($seq)" test "$seq" = "create start health_status:unhealthy health_status:healthy"
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
  seq=$(k events --stream=false --filter container=h2 --format json | evseq)
  check "$mode: events for --health-on-failure=restart ($seq)" bash -c "[[ '$seq' == 'create start health_status:unhealthy '*'restart start'* ]]"
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
  out=$(k wait --condition exited rf)
  check "$mode: wait --condition exited prints the exit code ($out)" test "$out" = 3
  k run -d --name ra --network none --restart always busybox sleep 120 >/dev/null 2>"$work/err" || diag <"$work/err"
  pid=$(k inspect --format '{{.State.Pid}}' ra)
  child=$(cat /proc/$pid/task/$pid/children 2>/dev/null | awk '{print $1}')
  as_mode "$mode" kill -KILL "$child" 2>/dev/null
  wait_for 10 bash -c "[ \"\$($(declare -f kiln_as as_mode); kiln_as $mode $store inspect --format '{{.State.Status}} {{.RestartCount}}' ra)\" = 'running 1' ]"
  out=$(k inspect --format '{{.State.Status}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}' ra)
  check "$mode: always survives its process killed by SIGKILL ($out)" test "$out" = "running 1 always"
  seq=$(k events --stream=false --filter container=ra --format json | evseq)
  check "$mode: events --format json for always after SIGKILL ($seq)" test "$seq" = "create start died:137 restart start"
  k stop -t 1 ra >/dev/null 2>&1
  sleep 1.5  # longer than the first back-off (100 ms): a restart would show
  out=$(k inspect --format '{{.State.Status}} {{.State.Pid}}' ra)
  check "$mode: stop stays stopped under --restart always ($out)" test "$out" = "exited 0"
  seq=$(k events --stream=false --filter container=ra --format json | evseq)
  check "$mode: events --format json for stop: no restart after it ($seq)" bash -c "[[ '$seq' =~ ^create\ start\ died:137\ restart\ start\ (stop\ died:[0-9]+|died:[0-9]+\ stop)\$ ]]"
  out=$(k restart ra 2>&1)
  check "$mode: kiln restart starts it again ($out)" test "$out" = ra -a "$(k inspect --format '{{.State.Status}}' ra)" = running
  k rm -f ra >/dev/null 2>&1
  k run --rm --restart always busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: --rm with --restart is refused (rc $rc)" test "$rc" -eq 2
  # A crash loop is visible: Restarting in ps, State.Restarting in inspect.
  # The state flips between runs: sample once the back-off is 800 ms.
  k run -d --name loop --network none --restart always busybox sh -c 'exit 5' >/dev/null 2>"$work/err" || diag <"$work/err"
  crash_seen() {
    out=$(k inspect --format '{{.State.Restarting}} {{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' loop)
    ps=$(k ps -a --format '{{.Status}}' --filter name=loop)
    [[ "$out" =~ ^true\ restarting\ 5\ ([3-9]|[1-9][0-9])$ && "$ps" == 'Restarting (5)'* ]]
  }
  # One sample must show both at once; checking again would race the next flip.
  if wait_for 15 crash_seen; then seen=yes; else seen=no; fi
  check "$mode: a crash loop shows in inspect (Restarting, Status, ExitCode, RestartCount: $out) and ps ($ps)" test "$seen" = yes
  k rm -f loop >/dev/null 2>&1

  # kiln wait --condition (podman's)
  k create --name wc --network none busybox sleep 60 >/dev/null 2>"$work/err" || diag <"$work/err"
  (sleep 1; k start wc >/dev/null 2>&1) &
  out=$(timeout 10 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store wait --condition running wc" 2>&1)
  wait
  check "$mode: wait --condition running waits for the start, prints -1 ($out)" test "$out" = -1 -a "$(k inspect --format '{{.State.Status}}' wc)" = running
  k wait --condition healthy wc >/dev/null 2>"$work/err"; rc=$?
  check "$mode: wait --condition healthy without a check: exit 2, clear ($rc: $(cat "$work/err"))" \
    bash -c "[ $rc -eq 2 ] && grep -q 'has no healthcheck' '$work/err'"
  k wait --condition paused-ish wc >/dev/null 2>"$work/err"; rc=$?
  check "$mode: wait --condition of an unknown condition: exit 2 ($rc: $(cat "$work/err"))" \
    bash -c "[ $rc -eq 2 ] && grep -q 'invalid --condition paused-ish' '$work/err'"
  out=$(k wait --ignore no-such-ctr 2>&1); rc=$?
  check "$mode: wait --ignore of a missing container prints -1 ($rc: $out)" test "$rc" -eq 0 -a "$out" = -1
  k rm -f wc >/dev/null 2>&1
  k run -d --name hx --network none --health-cmd 'test -f /tmp/never' --health-interval 1s --health-retries 1 busybox sh -c 'sleep 1; exit 4' >/dev/null 2>&1
  out=$(timeout 10 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store wait --condition healthy hx" 2>"$work/err"); rc=$?
  check "$mode: wait --condition healthy of a container that exits fails clearly ($rc: $(cat "$work/err"))" \
    bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'exited (code 4) without becoming healthy' '$work/err'"
  k rm -f hx >/dev/null 2>&1

  # 4. events
  seq=$(k events --stream=false --filter container=rf --format json | evseq)
  check "$mode: events --format json for on-failure:2 ($seq)" test "$seq" = "create start died:3 restart start died:3 restart start died:3"
  seq=$(k events --stream=false --filter container=rf --format '{{.Status}}' | tr '\n' ' ')
  check "$mode: events with a template ($seq)" test "$seq" = "create start died restart start died restart start died "
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

  # 5. events of images, volumes, networks and secrets (podman's shapes)
  since=$(date +%s)
  k tag busybox evimg:1 >/dev/null 2>&1
  k save -o "$work/ev.tar" evimg:1 >/dev/null 2>&1
  k rmi evimg:1 >/dev/null 2>&1
  k load -i "$work/ev.tar" >/dev/null 2>&1
  k push evimg:1 "oci:$work/evoci:x" >/dev/null 2>&1
  k pull "oci:$work/evoci:x" >/dev/null 2>&1
  k rmi -f evimg:1 >/dev/null 2>&1
  id=$(k inspect --format '{{.Id}}' busybox 2>/dev/null); id=${id#sha256:}
  seq=$(k events --stream=false --since "$since" --filter type=image --format json | python3 -c '
import json, sys
print(" ".join(j["Status"] + "=" + j.get("Name", "") + ("" if j.get("ID") == sys.argv[1] else "(" + j.get("ID", "")[:12] + ")")
               for j in map(json.loads, sys.stdin)))' "$id")
  want="tag=localhost/evimg:1 save=$work/ev.tar untag=localhost/evimg:1 loadfromarchive=$work/ev.tar"
  want="$want push=oci:$work/evoci:x pull=oci:$work/evoci:x untag=localhost/evimg:1"
  check "$mode: image events tag, save, untag, loadfromarchive, push, pull ($seq)" \
    bash -c "[[ '$seq' == '$want'* ]]"
  iid=$(k import "$work/busybox.tar" evimp 2>/dev/null)
  k rmi evimp >/dev/null 2>&1
  seq=$(k events --stream=false --since "$since" --filter image="$iid" --format json | python3 -c '
import json, sys
print(" ".join(j["Status"] + "=" + j["Name"] + ("" if j["ID"] == sys.argv[1] else "(" + j["ID"] + ")") for j in map(json.loads, sys.stdin)))' "$iid")
  check "$mode: import, untag and remove of an image ($seq)" test "$seq" = "import=$work/busybox.tar untag=localhost/evimp:latest remove=evimp"
  n=$(k events --stream=false --filter type=image --filter event=import --format json | wc -l)
  check "$mode: import and build are image events too ($n import; build: $(k events --stream=false --filter event=build --format '{{.Name}}' | tr '\n' ' '))" \
    bash -c "[ $n -ge 1 ] && $(declare -f kiln_as as_mode); kiln_as $mode $store events --stream=false --filter event=build --format '{{.Name}}' | grep -qx localhost/hcimg:latest"
  line=$(k events --stream=false --since "$since" --filter type=image --filter event=tag | head -1)
  check "$mode: the plain line of an image event is podman's ($line)" bash -c "[[ '$line' =~ \ image\ tag\ $id\ localhost/evimg:1\$ ]]"
  k volume create evv1 >/dev/null; k volume rm evv1 >/dev/null; k volume create evv2 >/dev/null
  k volume prune -f >/dev/null 2>&1
  seq=$(k events --stream=false --since "$since" --filter type=volume --format json | python3 -c '
import json, sys
print(" ".join(j["Status"] + "=" + j["Name"] for j in map(json.loads, sys.stdin)))')
  check "$mode: volume events create, remove, prune ($seq)" test "$seq" = "create=evv1 remove=evv1 create=evv2 remove=evv2 prune=evv2"
  k network create evn1 >/dev/null && k network create evn2 >/dev/null
  k create --name evc --network evn1 busybox true >/dev/null 2>"$work/err" || diag <"$work/err"
  k network connect evn2 evc >/dev/null 2>"$work/err" || diag <"$work/err"
  k network disconnect evn2 evc >/dev/null 2>"$work/err" || diag <"$work/err"
  k rm evc >/dev/null; k network rm evn1 evn2 >/dev/null
  cid=$(k events --stream=false --filter container=evc --filter event=create --format '{{.ID}}')
  seq=$(k events --stream=false --since "$since" --filter type=network --format json | python3 -c '
import json, sys
print(" ".join(j["Status"] + "=" + j["Network"] + ("/ctr" if j["ID"] == sys.argv[1] else "") for j in map(json.loads, sys.stdin)))' "$cid")
  check "$mode: network events create, connect, disconnect, remove ($seq)" \
    test "$seq" = "create=evn1 create=evn2 connect=evn2/ctr disconnect=evn2/ctr remove=evn1 remove=evn2"
  n=$(k events --stream=false --since "$since" --filter network=evn2 --format json | wc -l)
  check "$mode: --filter network=NAME ($n)" test "$n" = 4
  seq=$(k events --stream=false --filter type=secret --format json | python3 -c '
import json, sys
print(" ".join(j["Status"] + "=" + j["Name"] + ":" + str(len(j["ID"])) for j in map(json.loads, sys.stdin)))')
  check "$mode: secret events create, remove, with the 25-hex ID ($seq)" test "$seq" = "create=dbpass:25 remove=dbpass:25"
  k events --stream=false --filter type=bogus >/dev/null 2>"$work/err"; rc=$?
  check "$mode: --filter type= of an unknown type: exit 2 ($rc)" bash -c "[ $rc -eq 2 ] && grep -q 'unknown event type' '$work/err'"

  # 6. the rest of a container's life: /run/.containerenv, rename, top, attach
  rootless=1; [ "$mode" = root ] && rootless=0
  out=$(k run --rm --name ce --network none busybox cat /run/.containerenv 2>&1)
  check "$mode: /run/.containerenv names the container and its image ($(echo $out))" \
    bash -c "grep -qx 'name=\"ce\"' <<<'$out' && grep -qx 'image=\"busybox\"' <<<'$out' &&
             grep -qE '^id=\"[0-9a-f]{64}\"\$' <<<'$out' && grep -qE '^imageid=\"[0-9a-f]{64}\"\$' <<<'$out' &&
             grep -qx 'rootless=$rootless' <<<'$out' && grep -qx 'engine=\"kiln\"' <<<'$out'"
  k run -d --name rn1 --network none busybox sleep 120 >/dev/null 2>"$work/err" || diag <"$work/err"
  k rename rn1 rn2 2>"$work/err"; rc=$?
  out=$(k inspect --format '{{.Name}} {{.State.Status}}' rn2 2>&1)
  check "$mode: rename a running container ($rc: $out)" test "$rc" -eq 0 -a "$out" = "rn2 running"
  k inspect rn1 >/dev/null 2>&1; rc=$?
  check "$mode: ... the old name is gone ($rc)" test "$rc" -ne 0
  k run -d --name rn3 --network none busybox sleep 120 >/dev/null 2>&1
  k rename rn3 rn2 2>"$work/err"; rc=$?
  check "$mode: rename to a name in use: exit 2, clear ($rc: $(cat "$work/err"))" \
    bash -c "[ $rc -eq 2 ] && grep -q 'the container name rn2 is already in use' '$work/err'"
  k rename rn3 'bad/name' 2>"$work/err"; rc=$?
  check "$mode: rename to an invalid name: exit 2 ($rc)" test "$rc" -eq 2
  seq=$(k events --stream=false --filter container=rn2 --format json | evseq)
  check "$mode: a rename event under the new name ($seq)" test "$seq" = "rename"
  k exec rn2 sh -c 'sleep 100 &' >/dev/null 2>&1
  k top rn2 >"$work/top" 2>"$work/err"; rc=$?
  head=$(head -1 "$work/top" | tr -s ' ')
  check "$mode: top prints podman's columns ($rc: $head)" test "$rc" -eq 0 -a "$head" = "USER PID PPID %CPU ELAPSED TTY TIME COMMAND"
  check "$mode: top lists the command as root in the container ($(grep 'sleep 120' "$work/top" | tr -s ' '))" \
    bash -c "grep 'sleep 120' '$work/top' | grep -qE '^root +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.a-z]+ +\\? +[0-9a-z.]+ +sleep 120\$'"
  check "$mode: ... and a process started by exec ($(grep -c 'sleep 100' "$work/top"))" grep -q 'sleep 100' "$work/top"
  out=$(k top rn2 pid,args 2>&1 | head -1 | tr -s ' ')
  check "$mode: top with descriptors ($out)" test "$out" = "PID COMMAND"
  k top rn2 bogus >/dev/null 2>"$work/err"; rc=$?
  check "$mode: top with an unknown descriptor: exit 2 ($rc)" bash -c "[ $rc -eq 2 ] && grep -q 'unknown top descriptor bogus' '$work/err'"
  k rm -f rn2 rn3 >/dev/null 2>&1
  k create --name stopped1 --network none busybox true >/dev/null 2>&1
  k top stopped1 >/dev/null 2>"$work/err"; rc=$?
  check "$mode: top of a container that is not running fails clearly ($rc)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'top can only be used on running containers' '$work/err'"
  k attach stopped1 >/dev/null 2>"$work/err"; rc=$?
  check "$mode: attach to a container that is not running: 125 ($rc)" \
    bash -c "[ $rc -eq 125 ] && grep -q 'you can only attach to running containers' '$work/err'"
  k rm -f stopped1 >/dev/null 2>&1
  k run -d --name at1 --network none busybox sh -c 'echo before; sleep 2; echo hello-attach; exit 7' >/dev/null 2>&1
  # (attach once "before" is in the log: under load the echo can come after attach started)
  wait_for 2 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs at1 | grep -q before"
  out=$(timeout 20 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store attach at1" 2>&1); rc=$?
  check "$mode: attach prints the output from now on and exits with the container's code ($rc: $(echo $out))" \
    test "$rc" -eq 7 -a "$out" = hello-attach
  k run -d --name at2 --network none busybox sh -c 'trap "echo got-int; exit 3" INT; echo ready; while :; do sleep 0.2; done' >/dev/null 2>&1
  wait_for 5 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs at2 | grep -q ready"
  as_mode "$mode" env KILN_ROOT="$store" "$KILN_BIN" attach at2 >"$work/attach.out" 2>&1 &
  apid=$!
  sleep 1
  kpid=$(kiln_pid_under "$apid")
  kill -INT "$kpid" 2>/dev/null
  wait "$apid"; rc=$?
  check "$mode: attach passes Ctrl-C (SIGINT) to the container ($rc: $(cat "$work/attach.out"))" \
    bash -c "[ $rc -eq 3 ] && grep -qx got-int '$work/attach.out'"
  k rm -f at1 at2 >/dev/null 2>&1

  for c in $(k ps -a -q); do k rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$work" 2>/dev/null
done
tap_done
