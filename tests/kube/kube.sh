#!/bin/bash
# kube generate / generate kube from live pods and containers, the round
# trip generate -> kube down -> kube play, and generate systemd
# (docs/kube.md), through the real binary as the test user and as root
# (TAP): the Pod YAML has the ports, env, volumes, health check and restart
# policy of what runs, and playing it back gives them again (the volume's
# data kept); the systemd unit passes systemd-analyze
# verify (a structural check where it is missing) and its ExecStart, run by
# hand, starts the container.
. "$(dirname "$0")/../integration/lib.sh"
temp_workdir kube


for mode in $(test_modes); do
  begin_mode_here "$mode" || continue
  hp=$(free_port)
  k pod create --name app-pod -p "$hp:80" --label tier=web >/dev/null 2>&1
  k volume create appdata >/dev/null 2>&1
  out=$(k run -d --pod app-pod --name web -e GREETING=hello -v appdata:/data -v "$w:/host:ro" \
    --health-cmd 'test -d /data' --health-interval 5s --health-retries 2 --restart always \
    busybox httpd -f -p 80 -h /data 2>&1) || { tap_not_ok "$mode: run --pod: $out"; continue; }

  out=$(k kube generate app-pod -f "$w/pod.yml" 2>&1); rc=$?
  [ "$rc" = 0 ] && [ -s "$w/pod.yml" ] && tap_ok "$mode: kube generate -f writes the file" || tap_not_ok "$mode: kube generate: $rc $out"
  if python3 - "$w/pod.yml" "$hp" "$w" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
hp, host = int(sys.argv[2]), sys.argv[3]
assert doc["kind"] == "Pod" and doc["apiVersion"] == "v1", doc
assert doc["metadata"]["name"] == "app-pod" and doc["metadata"]["labels"] == {"tier": "web"}, doc["metadata"]
spec = doc["spec"]
assert spec["restartPolicy"] == "Always", spec
(c,) = spec["containers"]
assert c["name"] == "web" and c["image"] == "busybox", c
assert c["args"] == ["httpd", "-f", "-p", "80", "-h", "/data"] and "command" not in c, c
assert c["ports"] == [{"containerPort": 80, "hostPort": hp}], c["ports"]
assert c["env"] == [{"name": "GREETING", "value": "hello"}], c.get("env")
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
vols = {v["name"]: v for v in spec["volumes"]}
assert vols[mounts["/data"]["name"]]["persistentVolumeClaim"] == {"claimName": "appdata"}, vols
assert vols[mounts["/host"]["name"]]["hostPath"]["path"] == host and mounts["/host"]["readOnly"] is True, (vols, mounts)
p = c["livenessProbe"]
assert p["exec"]["command"] == ["/bin/sh", "-c", "test -d /data"], p
assert p["periodSeconds"] == 5 and p["failureThreshold"] == 2, p
PY
  then tap_ok "$mode: the Pod YAML has the image, args, hostPort, env, PVC, hostPath, livenessProbe, restartPolicy"
  else tap_not_ok "$mode: generated YAML"; diag <"$w/pod.yml"; fi
  a=$(k kube generate app-pod 2>/dev/null); b=$(k generate kube app-pod 2>/dev/null)
  [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$(cat "$w/pod.yml")" ] && tap_ok "$mode: generate kube = kube generate = the file" ||
    tap_not_ok "$mode: generate kube differs"
  out=$(k kube generate --service app-pod 2>/dev/null)
  if python3 - "$out" "$hp" <<'PY'
import sys, yaml
docs = list(yaml.safe_load_all(sys.argv[1]))
pod, svc = docs
assert pod["metadata"]["labels"]["app"] == "app-pod", pod["metadata"]
assert svc["kind"] == "Service" and svc["spec"]["type"] == "NodePort", svc
assert svc["spec"]["selector"] == {"app": "app-pod"}, svc
(p,) = svc["spec"]["ports"]
assert p["port"] == 80 and p["nodePort"] == int(sys.argv[2]) and p["protocol"] == "TCP", p
PY
  then tap_ok "$mode: kube generate --service adds a NodePort Service for the pod's port"
  else tap_not_ok "$mode: --service: $out"; fi
  k run -d --name solo -p 127.0.0.1::8080 busybox sleep 300 >/dev/null 2>&1
  out=$(k kube generate solo 2>/dev/null)
  if python3 - "$out" <<'PY'
import sys, yaml
d = yaml.safe_load(sys.argv[1])
assert d["metadata"]["name"] == "solo-pod", d["metadata"]
(c,) = d["spec"]["containers"]
assert c["name"] == "solo" and c["args"] == ["sleep", "300"], c
assert c["ports"][0]["containerPort"] == 8080 and c["ports"][0]["hostIP"] == "127.0.0.1", c["ports"]
PY
  then tap_ok "$mode: kube generate of a container: pod solo-pod, its own port"
  else tap_not_ok "$mode: container YAML: $out"; fi
  out=$(k kube generate nosuch 2>&1); rc=$?
  [ "$rc" = 125 ] && printf '%s' "$out" | grep -q 'nosuch not found' && tap_ok "$mode: kube generate nosuch: exit 125" ||
    tap_not_ok "$mode: kube generate nosuch: $rc $out"

  # generate systemd: a unit that starts the container with kiln start.
  unit=$(k generate systemd --name solo 2>&1)
  printf '%s\n' "$unit" >"$w/container-solo.service"
  if command -v systemd-analyze >/dev/null; then
    # verify exits 0 even when it ignores a bad line: its complaints about
    # the unit (lines naming the file) fail the test too.
    out=$(systemd-analyze verify "$w/container-solo.service" 2>&1); rc=$?
    [ "$rc" = 0 ] && ! grep -q 'container-solo.service' <<<"$out" && tap_ok "$mode: the unit passes systemd-analyze verify, no complaint" ||
      tap_not_ok "$mode: verify: $out"
    printf '[Service]\nType=forkin\nExecStart=%s\n' "$KILN_BIN" >"$w/broken-unit.service"
    out=$(systemd-analyze verify "$w/broken-unit.service" 2>&1)
    grep -q 'broken-unit.service:2' <<<"$out" && tap_ok "$mode: (the verify check can fail: a bad Type= is named)" ||
      tap_not_ok "$mode: systemd-analyze verify did not name a bad line: $out"
  else
    tap_skip "systemd-analyze is not installed"
  fi
  if grep -qx '\[Unit\]' <<<"$unit" && grep -qx '\[Service\]' <<<"$unit" && grep -qx '\[Install\]' <<<"$unit" &&
     grep -qx 'Type=forking' <<<"$unit" && grep -q '^ExecStart=/.* --root .* start solo$' <<<"$unit" &&
     grep -q '^ExecStop=/.* stop -t 10 solo$' <<<"$unit" && grep -qx 'WantedBy=default.target' <<<"$unit"; then
    tap_ok "$mode: the unit has [Unit]/[Service]/[Install], Type=forking, ExecStart kiln start, ExecStop kiln stop"
  else
    tap_not_ok "$mode: unit structure"; printf '%s\n' "$unit" | diag
  fi
  k stop -t 1 solo >/dev/null 2>&1
  start=$(sed -n 's/^ExecStart=//p' <<<"$unit")
  out=$(as_mode "$mode" env XDG_RUNTIME_DIR= sh -c "$start" 2>&1); rc=$?
  st=$(k inspect --type container -f '{{.State.Status}}' solo 2>&1)
  [ "$rc" = 0 ] && [ "$st" = running ] && tap_ok "$mode: the unit's ExecStart, run by hand, starts the container" ||
    tap_not_ok "$mode: ExecStart: $rc $out / $st"
  out=$(cd "$w" && k generate systemd --name --files --restart-policy always app-pod 2>&1)
  [ "$out" = "$w/pod-app-pod.service" ] && grep -q '^ExecStart=.* pod start app-pod$' "$w/pod-app-pod.service" &&
    grep -qx 'Restart=always' "$w/pod-app-pod.service" && tap_ok "$mode: generate systemd --files for a pod (kiln pod start)" ||
    tap_not_ok "$mode: --files: $out"
  if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "$w/pod-app-pod.service" 2>&1); rc=$?
    [ "$rc" = 0 ] && ! grep -q 'pod-app-pod.service' <<<"$out" && tap_ok "$mode: the pod's unit passes systemd-analyze verify" ||
      tap_not_ok "$mode: verify pod unit: $out"
  fi
  k pod stop -t 1 app-pod >/dev/null 2>&1
  start=$(sed -n 's/^ExecStart=//p' "$w/pod-app-pod.service")
  out=$(as_mode "$mode" env XDG_RUNTIME_DIR= sh -c "$start" 2>&1); rc=$?
  st=$(k pod ps --filter name=app-pod --format '{{.Status}}' 2>&1)
  [ "$rc" = 0 ] && [ "$st" = Running ] && tap_ok "$mode: the pod unit's ExecStart, run by hand, starts the pod" ||
    tap_not_ok "$mode: pod ExecStart: $rc $out / $st"
  out=$(k generate systemd --new solo 2>&1); rc=$?
  [ "$rc" != 0 ] && printf '%s' "$out" | grep -q 'not supported yet' && tap_ok "$mode: generate systemd --new is refused clearly" ||
    tap_not_ok "$mode: --new: $rc $out"
  # The round trip: kube generate -> kube down -> kube play gives the same
  # ports, env, volume (its data kept) and health check.
  k exec web sh -c 'echo kept-data > /data/i' >/dev/null 2>&1
  out=$(k kube down "$w/pod.yml" 2>&1); rc=$?
  [ "$rc" = 0 ] && printf '%s\n' "$out" | grep -qx 'Pods removed:' && ! k pod exists app-pod &&
    tap_ok "$mode: kube down removes the pod of the YAML" || tap_not_ok "$mode: kube down: $rc $out"
  out=$(k kube play "$w/pod.yml" 2>&1); rc=$?
  [ "$rc" = 0 ] && printf '%s\n' "$out" | grep -qx 'Pod:' && tap_ok "$mode: kube play of the generated YAML" ||
    tap_not_ok "$mode: kube play: $rc $out"
  got=$(fetch "$hp" /i)
  [ "$got" = kept-data ] && tap_ok "$mode: the played pod serves on the same port, from the kept volume" ||
    tap_not_ok "$mode: after play: '$got'"
  out=$(k inspect --type container -f '{{range .Config.env}}{{.}} {{end}}|{{.Config.health.test}}|{{.HostConfig.RestartPolicy.Name}}' app-pod-web 2>&1)
  case "$out" in *GREETING=hello*'|[CMD-SHELL test -d /data]|always') tap_ok "$mode: env, health check and restart policy kept";;
    *) tap_not_ok "$mode: played container: $out";; esac
  a=$(k kube generate app-pod 2>/dev/null | sed 's/hostPath:.*//')
  b=$(sed 's/hostPath:.*//' "$w/pod.yml")
  [ "$a" = "$b" ] && tap_ok "$mode: generate after play gives the same YAML (a fixed point)" ||
    { tap_not_ok "$mode: generate after play differs"; diff <(echo "$b") <(echo "$a") | diag; }
  out=$(k kube play "$w/pod.yml" 2>&1); rc=$?
  [ "$rc" != 0 ] && printf '%s' "$out" | grep -q 'already exists' && tap_ok "$mode: kube play of an existing pod is refused" ||
    tap_not_ok "$mode: play twice: $rc $out"
  old=$(k pod inspect -f '{{.Id}}' app-pod 2>&1)
  out=$(k play kube --replace "$w/pod.yml" 2>&1); rc=$?
  new=$(k pod inspect -f '{{.Id}}' app-pod 2>&1)
  [ "$rc" = 0 ] && [ -n "$new" ] && [ "$new" != "$old" ] && tap_ok "$mode: play kube --replace replaces the pod" ||
    tap_not_ok "$mode: --replace: $rc $out ($old -> $new)"
  got=$(fetch "$hp" /i)
  [ "$got" = kept-data ] && tap_ok "$mode: the replaced pod serves the kept data again" || tap_not_ok "$mode: after --replace: '$got'"
  k pod rm -f app-pod >/dev/null 2>&1
  k rm -f solo >/dev/null 2>&1
done
tap_done
