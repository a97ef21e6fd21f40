#!/bin/bash
# Pods (docs/pods.md) through the real binary, as the test user and as root
# (TAP): a pod publishing a port serves a busybox httpd started with --pod;
# a second member reaches it on 127.0.0.1 and has the pod's hostname and
# namespaces; -p on a member is refused; pod stop/start/rm -f act on every
# member including the infra; the pod commands' outputs.
. "$(dirname "$0")/../integration/lib.sh"
temp_workdir pod

for mode in $(test_modes); do
  begin_mode_here "$mode" || continue
  hp=$(free_port)

  # create: the full pod ID; the infra exists (created, not running) with
  # kiln's pause image, made without any pull.
  id=$(k pod create --name web-pod -p "127.0.0.1:$hp:80" --label app=web 2>&1)
  if [[ "$id" =~ ^[0-9a-f]{64}$ ]]; then tap_ok "$mode: pod create prints the pod ID"
  else tap_not_ok "$mode: pod create: $id"; continue; fi
  out=$(k pod ps --format '{{.Name}} {{.Status}} {{.NumberOfContainers}}' 2>&1)
  [ "$out" = "web-pod Created 1" ] && tap_ok "$mode: pod ps: web-pod Created with its infra" ||
    tap_not_ok "$mode: pod ps: $out"
  head=$(k pod ls 2>&1 | head -1 | tr -s ' ')
  [ "$head" = "POD ID NAME STATUS CREATED INFRA ID # OF CONTAINERS" ] && tap_ok "$mode: pod ls has podman's header" ||
    tap_not_ok "$mode: pod ls header: $head"
  out=$(k images --format '{{.Repository}}:{{.Tag}}' 2>&1)
  printf '%s\n' "$out" | grep -qx 'localhost/kiln-pause:latest' && tap_ok "$mode: the infra image is kiln's own pause image" ||
    tap_not_ok "$mode: images: $out"
  k pod exists web-pod && tap_ok "$mode: pod exists web-pod: 0" || tap_not_ok "$mode: pod exists web-pod"
  k pod exists nosuch; rc=$?
  [ "$rc" = 1 ] && tap_ok "$mode: pod exists nosuch: 1" || tap_not_ok "$mode: pod exists nosuch: $rc"

  # A member serves on the pod's port; the host reaches it through -p.
  out=$(k run -d --pod web-pod --name srv busybox sh -c 'echo hello-pod >/tmp/i; httpd -f -p 80 -h /tmp' 2>&1)
  got=$(fetch "$hp" /i)
  [ "$got" = hello-pod ] && tap_ok "$mode: the pod's -p $hp:80 reaches httpd started with --pod" ||
    { tap_not_ok "$mode: host -> pod port $hp: '$got'"; printf '%s\n' "$out" | diag; }
  # A second member reaches it on 127.0.0.1:80 and has the same hostname.
  got=$(k run --rm --pod web-pod busybox sh -c "printf 'GET /i HTTP/1.0\r\n\r\n' | nc -w 3 127.0.0.1 80 | tail -1" 2>&1)
  [ "$got" = hello-pod ] && tap_ok "$mode: a second member reaches the server on 127.0.0.1:80" ||
    tap_not_ok "$mode: member -> 127.0.0.1:80: '$got'"
  h1=$(k exec srv hostname 2>&1)
  h2=$(k run --rm --pod web-pod busybox hostname 2>&1)
  [ "$h1" = web-pod ] && [ "$h2" = web-pod ] && tap_ok "$mode: members share the pod's hostname (web-pod)" ||
    tap_not_ok "$mode: hostnames: '$h1' '$h2'"
  # The same network, IPC and UTS namespaces; a container outside the pod has others.
  ns='for n in net ipc uts; do readlink /proc/self/ns/$n; done | tr "\n" " "'
  n1=$(k exec srv sh -c "$ns" 2>&1)
  n2=$(k run --rm --pod web-pod busybox sh -c "$ns" 2>&1)
  n3=$(k run --rm busybox sh -c "$ns" 2>&1)
  if [ -n "$n1" ] && [ "$n1" = "$n2" ] && [ "$n1" != "$n3" ] && [[ "$n1" == net:* ]]; then
    tap_ok "$mode: members share net, ipc and uts namespaces ($n1)"
  else
    tap_not_ok "$mode: namespaces: '$n1' / '$n2' / outside '$n3'"
  fi

  # Ports and networks belong to the pod: refused on a member, podman's reason.
  out=$(k run -d --pod web-pod -p 8099:80 busybox true 2>&1); rc=$?
  if [ "$rc" = 2 ] && printf '%s' "$out" | grep -q 'published or exposed ports must be defined when the pod is created'; then
    tap_ok "$mode: run --pod -p is refused (exit 2, podman's reason)"
  else
    tap_not_ok "$mode: run --pod -p: exit $rc: $out"
  fi
  out=$(k run --rm --pod web-pod --network none busybox true 2>&1); rc=$?
  [ "$rc" = 2 ] && printf '%s' "$out" | grep -q 'networks must be defined when the pod is created' &&
    tap_ok "$mode: run --pod --network is refused" || tap_not_ok "$mode: run --pod --network: exit $rc: $out"
  out=$(k run --rm --pod nosuch busybox true 2>&1); rc=$?
  [ "$rc" = 125 ] && printf '%s' "$out" | grep -q 'no pod with name or ID nosuch found' &&
    tap_ok "$mode: run --pod nosuch: podman's not-found" || tap_not_ok "$mode: run --pod nosuch: exit $rc: $out"

  # ps --pod: the pod column; the filter; the infra is a container too.
  out=$(k ps -a --pod --format '{{.Names}} {{.PodName}} {{.IsInfra}}' 2>&1 | sort)
  want=$(printf '%s\n' "${id:0:12}-infra web-pod true" "srv web-pod false" | sort)
  [ "$out" = "$want" ] && tap_ok "$mode: ps -a --pod names the pod of each container (infra included)" ||
    tap_not_ok "$mode: ps --pod: $out"
  out=$(k ps -a --pod 2>&1 | head -1)
  printf '%s' "$out" | grep -q 'POD ID *PODNAME' && tap_ok "$mode: ps --pod adds POD ID and PODNAME columns" ||
    tap_not_ok "$mode: ps --pod header: $out"
  out=$(k ps -a --filter pod=web-pod -q 2>&1 | wc -l)
  [ "$out" = 2 ] && tap_ok "$mode: ps --filter pod=web-pod" || tap_not_ok "$mode: ps --filter pod: $out"

  out=$(k pod inspect -f '{{.Name}} {{.State}} {{.NumContainers}} {{.Hostname}} {{.SharedNamespaces}} {{.Labels.app}}' web-pod 2>&1)
  [ "$out" = "web-pod Running 2 web-pod [ipc net uts] web" ] && tap_ok "$mode: pod inspect: $out" ||
    tap_not_ok "$mode: pod inspect: $out"
  out=$(k pod top web-pod 2>&1)
  printf '%s\n' "$out" | grep -q 'httpd -f -p 80' && printf '%s\n' "$out" | grep -q 'catatonit -P' &&
    tap_ok "$mode: pod top shows the members' processes and the pause process" || tap_not_ok "$mode: pod top: $out"
  k exec srv sh -c 'echo logged-line' >/dev/null 2>&1
  k run -d --pod web-pod --name talker busybox echo from-talker >/dev/null 2>&1
  k wait talker >/dev/null 2>&1
  out=$(k pod logs --names web-pod 2>&1)
  printf '%s\n' "$out" | grep -qx 'talker from-talker' && tap_ok "$mode: pod logs --names" || tap_not_ok "$mode: pod logs: $out"

  # stop: every member and the infra; start: all again, the port serves again.
  out=$(k pod stop -t 2 web-pod 2>&1)
  states=$(k ps -a --filter pod=web-pod --format '{{.State}}' 2>&1 | sort -u | tr '\n' ' ')
  [ "$out" = "$id" ] && [ "$states" = "exited " ] && tap_ok "$mode: pod stop stops every container, infra included" ||
    tap_not_ok "$mode: pod stop: $out / $states"
  st=$(k pod ps --format '{{.Status}}' 2>&1)
  [ "$st" = Exited ] && tap_ok "$mode: pod ps: Exited" || tap_not_ok "$mode: pod ps after stop: $st"
  out=$(k pod start web-pod 2>&1)
  states=$(k ps -a --filter pod=web-pod --format '{{.Names}} {{.State}}' 2>&1 | sort | tr '\n' ' ')
  want="${id:0:12}-infra running srv running talker running "
  # talker (echo) may already have exited again
  if [ "$out" = "$id" ] && { [ "$states" = "$want" ] || [ "$states" = "${id:0:12}-infra running srv running talker exited " ]; }; then
    tap_ok "$mode: pod start starts the infra and every member"
  else
    tap_not_ok "$mode: pod start: $out / $states"
  fi
  got=$(fetch "$hp" /i)
  [ "$got" = hello-pod ] && tap_ok "$mode: after pod start the port serves again" || tap_not_ok "$mode: after start: '$got'"
  k rm -f talker >/dev/null 2>&1
  out=$(k pod restart web-pod 2>&1)
  got=$(fetch "$hp" /i)
  [ "$out" = "$id" ] && [ "$got" = hello-pod ] && tap_ok "$mode: pod restart" || tap_not_ok "$mode: pod restart: $out / '$got'"

  # rm: refused while running, -f removes every member and the infra.
  out=$(k pod rm web-pod 2>&1); rc=$?
  [ "$rc" != 0 ] && printf '%s' "$out" | grep -q 'has running containers' && tap_ok "$mode: pod rm of a running pod is refused" ||
    tap_not_ok "$mode: pod rm running: exit $rc: $out"
  out=$(k pod rm -f web-pod 2>&1)
  left=$(k ps -a -q 2>&1 | wc -l)
  if [ "$out" = "$id" ] && [ "$left" = 0 ] && ! k pod exists web-pod; then
    tap_ok "$mode: pod rm -f removes the pod, its members and its infra"
  else
    tap_not_ok "$mode: pod rm -f: $out / $left containers left"
  fi
  got=$(python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=1)' "$hp" 2>&1) &&
    tap_not_ok "$mode: port $hp still open after pod rm -f" || tap_ok "$mode: the pod's port is closed after pod rm -f"

  # run --pod new:NAME makes the pod; --share none; prune removes stopped pods.
  out=$(k run --pod new:np2 --name one busybox hostname 2>&1)
  [ "$out" = np2 ] && k pod exists np2 && tap_ok "$mode: run --pod new:np2 creates the pod" || tap_not_ok "$mode: new:np2: $out"
  out=$(k pod create --share none --name loose 2>&1)
  [[ "$out" =~ ^[0-9a-f]{64}$ ]] && tap_ok "$mode: pod create --share none" || tap_not_ok "$mode: --share none: $out"
  out=$(k pod create --share cgroup,net bad 2>&1); rc=$?
  [ "$rc" = 2 ] && printf '%s' "$out" | grep -q cgroup && tap_ok "$mode: --share cgroup is refused (exit 2, named)" ||
    tap_not_ok "$mode: --share cgroup: $rc $out"
  # --share +pid: members see each other's processes; the infra's init is pid 1.
  k pod create --share +pid --name pidpod >/dev/null 2>&1
  k run -d --pod pidpod --name pa busybox sleep 4242 >/dev/null 2>&1
  out=$(k run --rm --pod pidpod busybox ps -o pid,args 2>&1)
  sh=$(k pod inspect -f '{{.SharedNamespaces}}' pidpod 2>&1)
  if printf '%s\n' "$out" | grep -q 'sleep 4242' && printf '%s\n' "$out" | grep -q 'catatonit -P' && [ "$sh" = "[ipc net pid uts]" ]; then
    tap_ok "$mode: --share +pid: a member sees the other member's and the pause process"
  else
    tap_not_ok "$mode: --share pid: $sh / $out"
  fi
  out=$(k run --rm busybox ps -o args 2>&1)
  printf '%s\n' "$out" | grep -q 'sleep 4242' && tap_not_ok "$mode: a container outside the pod sees its processes" ||
    tap_ok "$mode: outside the pod the processes are not visible"
  k stop -t 1 pa >/dev/null 2>&1
  st=$(k inspect --type container -f '{{.State.Status}}' pa 2>&1)
  [ "$st" = exited ] && tap_ok "$mode: stop of a member in a shared PID namespace" || tap_not_ok "$mode: stop pa: $st"
  k pod rm -f pidpod >/dev/null 2>&1
  # --exit-policy stop: the pod (its infra) stops when its last member exits.
  k pod create --exit-policy stop --name xp >/dev/null 2>&1
  k run -d --pod xp --name x1 busybox sleep 1 >/dev/null 2>&1
  k run -d --pod xp --name x2 busybox sleep 2 >/dev/null 2>&1
  sleep 1.5
  mid=$(k pod ps --filter name=xp --format '{{.Status}}' 2>&1)
  for _ in $(seq 50); do
    [ "$(k pod ps --filter name=xp --format '{{.Status}}' 2>/dev/null)" = Exited ] && break
    sleep 0.2
  done
  st=$(k pod ps --filter name=xp --format '{{.Status}}' 2>&1)
  [ "$mid" = Degraded ] && [ "$st" = Exited ] && tap_ok "$mode: --exit-policy stop: the pod stops when its last container exits" ||
    tap_not_ok "$mode: --exit-policy stop: while one runs '$mid', after '$st'"
  k pod create --name xc >/dev/null 2>&1
  k run -d --pod xc --name y1 busybox true >/dev/null 2>&1
  k wait y1 >/dev/null 2>&1; sleep 0.5
  st=$(k pod ps --filter name=xc --format '{{.Status}}' 2>&1)
  [ "$st" = Degraded ] && tap_ok "$mode: --exit-policy continue (default): the infra keeps running" ||
    tap_not_ok "$mode: exit-policy continue: $st"
  # The infra goes only with its pod (podman's message).
  infra=$(k pod inspect -f '{{.InfraContainerID}}' xc 2>&1)
  xcid=$(k pod inspect -f '{{.Id}}' xc 2>&1)
  out=$(k rm -f "${xcid:0:12}-infra" 2>&1); rc=$?
  if [ "$rc" = 1 ] && printf "%s" "$out" | grep -q "container $infra is the infra container of pod .* and cannot be removed without removing the pod" &&
     k inspect --type container "$infra" >/dev/null 2>&1; then
    tap_ok "$mode: rm -f of the infra is refused with podman's message (exit 1)"
  else
    tap_not_ok "$mode: rm -f infra: $rc $out"
  fi
  k pod rm -f xp >/dev/null 2>&1
  k pod rm -f xc >/dev/null 2>&1
  out=$(k pod create --name np2 2>&1); rc=$?
  [ "$rc" = 2 ] && printf '%s' "$out" | grep -q 'already in use' && tap_ok "$mode: a taken pod name is refused" ||
    tap_not_ok "$mode: duplicate name: $rc $out"
  k pod stop np2 >/dev/null 2>&1
  out=$(k pod prune -f 2>&1 | wc -l)
  left=$(k pod ps -q 2>&1 | wc -l)
  [ "$out" = 2 ] && [ "$left" = 0 ] && tap_ok "$mode: pod prune removes the stopped pods" || tap_not_ok "$mode: prune: $out / $left"
  out=$(k prune --check 2>&1) && tap_ok "$mode: prune --check is clean after the pods" || tap_not_ok "$mode: prune --check: $out"
done
tap_done
