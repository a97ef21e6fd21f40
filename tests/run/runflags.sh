#!/usr/bin/env bash
# kiln run/create flags as podman 4.3 spells them ([2.4] item 4): -P, -p CTR,
# port ranges, kiln port, --tmpfs, -v ...:U, --init, --env-host, --label,
# --label-file, --annotation, --cidfile, --pull=newer, kiln create. Through
# the real binary, as the unprivileged test user and as root (TAP), checking
# what a user sees (a port answering on loopback, the mount's options, the
# owner on the host, the cidfile's bytes).
set -u
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

# two_free_ports: a base port B with B and B+1 free on 127.0.0.1
two_free_ports() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    b = random.randint(20000, 60000)
    try:
        s1 = socket.socket(); s1.bind(("127.0.0.1", b))
        s2 = socket.socket(); s2.bind(("127.0.0.1", b + 1))
        s1.close(); s2.close(); print(b); break
    except OSError:
        pass
PY
}

subuid_start() {  # the first host uid of USER's /etc/subuid range
  awk -F: -v u="$1" '$1 == u { print $2; exit }' /etc/subuid
}

for mode in $(test_modes); do
  begin_mode "$mode" || continue
  mkdir -p "$work/ctx"
  cat >"$work/ctx/Containerfile" <<'CF'
FROM busybox
RUN echo 'app:x:1000:1000:app:/home/app:/bin/sh' >>/etc/passwd && echo 'app:x:1000:' >>/etc/group && \
    mkdir -p /home/app /www && echo hello-www >/www/index.html && chown 1000:1000 /home/app
ENV IMGVAR=image
LABEL from.image=yes
EXPOSE 8080 8081/udp
CF
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/ctx"
  if ! k build -q -t web "$work/ctx" >/dev/null 2>"$work/err"; then
    diag <"$work/err"; tap_not_ok "$mode: build the test image"; continue
  fi
  tap_ok "$mode: build the test image (EXPOSE 8080 8081/udp, user app)"

  # 1. -p CTR / IP::CTR: a free host port, shown by `kiln port`, reachable
  id=$(k run -d -p 127.0.0.1::8080 web httpd -f -p 8080 -h /www 2>"$work/err")
  hp=$(k port "$id" 8080 2>>"$work/err")
  check "$mode: -p 127.0.0.1::8080 gets a free host port ($hp)" bash -c "[[ '$hp' =~ ^127\.0\.0\.1:[0-9]+$ ]] && [ '${hp#*:}' != 0 ]"
  out=$(fetch "${hp#*:}")
  check "$mode: ... which serves the container's page ($out)" test "$out" = hello-www
  out=$(k port "$id")
  check "$mode: kiln port CTR lists '8080/tcp -> $hp' ($out)" test "$out" = "8080/tcp -> $hp"
  out=$(k ps --format '{{.Ports}}' --filter id="$id")
  check "$mode: ps shows the chosen port ($out)" test "$out" = "$hp->8080/tcp"
  k port "$id" 9999 >/dev/null 2>"$work/err"; rc=$?
  check "$mode: kiln port CTR 9999 fails: failed to find published port (rc $rc)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'failed to find published port \"9999\"' '$work/err'"
  k rm -f "$id" >/dev/null 2>&1

  # 2. -P: every EXPOSEd port on a free host port (tcp and udp)
  id=$(k run -d -P web httpd -f -p 8080 -h /www 2>"$work/err")
  out=$(k port "$id" 2>>"$work/err")
  check "$mode: -P publishes 8080/tcp and 8081/udp ($(echo $out))" \
    bash -c "grep -Eq '^8080/tcp -> 0\.0\.0\.0:[0-9]+$' <<<'$out' && grep -Eq '^8081/udp -> 0\.0\.0\.0:[0-9]+$' <<<'$out'"
  hp=$(k port "$id" 8080/tcp)
  out=$(fetch "${hp#*:}")
  check "$mode: ... 8080 reachable on loopback ($out)" test "$out" = hello-www
  k rm -f "$id" >/dev/null 2>&1
  id=$(k run -d -P -p 127.0.0.1::8080 web httpd -f -p 8080 -h /www 2>"$work/err")
  out=$(k port "$id" | grep -c '^8080/tcp')
  check "$mode: -P skips a port -p already publishes ($out mapping of 8080)" test "$out" = 1
  k rm -f "$id" >/dev/null 2>&1

  # 3. port ranges
  b=$(two_free_ports)
  id=$(k run -d -p "127.0.0.1:$b-$((b + 1)):8080-8081" web \
         sh -c 'httpd -p 8080 -h /www; httpd -f -p 8081 -h /www' 2>"$work/err")
  o1=$(fetch "$b"); o2=$(fetch $((b + 1)))
  check "$mode: -p 127.0.0.1:$b-$((b + 1)):8080-8081 forwards both ($o1 $o2)" test "$o1 $o2" = "hello-www hello-www"
  out=$(k port "$id" 8081)
  check "$mode: kiln port CTR 8081 in the range ($out)" test "$out" = "127.0.0.1:$((b + 1))"
  out=$(k ps --format '{{.Ports}}' --filter id="$id")
  check "$mode: ps shows the range as podman ($out)" test "$out" = "127.0.0.1:$b-$((b + 1))->8080-8081/tcp"
  k rm -f "$id" >/dev/null 2>&1
  k run --rm -p 8000-8001:80 web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: unequal ranges refused, exit 2 (rc $rc)" \
    bash -c "[ $rc -eq 2 ] && grep -q 'port ranges have different lengths: 2 vs 1' '$work/err'"
  k run --rm -p 80/sctp web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: /sctp refused clearly (rc $rc)" bash -c "[ $rc -eq 2 ] && grep -q 'sctp is not supported' '$work/err'"
  k run --rm --network none -P web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: -P with --network none refused (rc $rc)" grep -q -- '-P/--publish-all needs --network private' "$work/err"

  # 4. --tmpfs
  out=$(k run --rm --tmpfs /t web grep ' /t ' /proc/mounts 2>"$work/err")
  check "$mode: --tmpfs /t: tmpfs rw,nosuid,nodev, exec as podman 4.3 ($out)" \
    bash -c "grep -q '^tmpfs /t tmpfs rw,nosuid,nodev' <<<'$out' && ! grep -q noexec <<<'$out'"
  out=$(k run --rm --tmpfs /t:size=1m,mode=700,noexec web grep ' /t ' /proc/mounts 2>"$work/err")
  check "$mode: --tmpfs /t:size=1m,mode=700,noexec ($out)" \
    bash -c "grep -q 'noexec' <<<'$out' && grep -q 'size=1024k' <<<'$out' && grep -q 'mode=700' <<<'$out'"
  out=$(k run --rm --tmpfs /t:ro web sh -c 'touch /t/x 2>/dev/null && echo writable || echo refused')
  check "$mode: --tmpfs /t:ro is read-only ($out)" test "$out" = refused
  out=$(k run --rm --tmpfs /t -u app web sh -c 'cp /bin/busybox /t/echo && /t/echo ran-from-tmpfs')
  check "$mode: --tmpfs default mode 1777 and exec: a user copies and runs a binary ($out)" test "$out" = ran-from-tmpfs
  k run --rm --tmpfs /t:suid web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: --tmpfs /t:suid refused, exit 2 (rc $rc)" bash -c "[ $rc -eq 2 ] && grep -q nosuid '$work/err'"
  k run --rm --tmpfs relative web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: --tmpfs relative path refused (rc $rc)" test "$rc" -eq 2

  # 5. -v SRC:DST:U: owned by the container's user, inside and on the host
  mkdir -p "$work/vol/sub"; echo x >"$work/vol/sub/f"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER:$KILN_TEST_USER" "$work/vol"
  out=$(k run --rm -u app -v "$work/vol:/data:U" web sh -c 'stat -c %u:%g /data /data/sub/f | sort -u; touch /data/new && echo wrote' 2>"$work/err")
  check "$mode: -v DIR:/data:U -u app: 1000:1000 inside, writable ($(echo $out))" test "$(echo $out)" = "1000:1000 wrote"
  [ -n "$out" ] || diag <"$work/err"
  if [ "$mode" = user ]; then
    u=$( [ "$(id -u)" -eq 0 ] && echo "$KILN_TEST_USER" || id -un )
    want=$(( $(subuid_start "$u") + 999 ))
  else
    want=1000
  fi
  out=$(stat -c %u "$work/vol" "$work/vol/sub/f" "$work/vol/new" | sort -u)
  check "$mode: ... on the host the tree is owned by uid $want ($(echo $out))" test "$(echo $out)" = "$want"
  if [ "$mode" = user ]; then
    mkdir -p "$work/vol2"; chown "$KILN_TEST_USER:root" "$work/vol2" 2>/dev/null
    k run --rm -u app -v "$work/vol2:/data:U" web true >/dev/null 2>"$work/err"; rc=$?
    if [ "$(id -u)" -eq 0 ]; then
      check "$mode: :U on a tree whose group is not mapped: one line naming it (rc $rc)" \
        bash -c "[ $rc -ne 0 ] && grep -q 'chown $work/vol2 to 1000:1000: Operation not permitted (its owner or group is not mapped' '$work/err'"
    fi
  fi
  out=$(k run --rm -u app -v "rfvol:/data:rw,U" web sh -c 'stat -c %u:%g /data; touch /data/ok && echo wrote')
  check "$mode: -v VOLUME:/data:rw,U ($(echo $out))" test "$(echo $out)" = "1000:1000 wrote"
  k run --rm -v "$work/vol:/data:X" web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: -v with an unknown option refused (rc $rc)" bash -c "[ $rc -eq 2 ] && grep -q 'invalid volume option X' '$work/err'"

  # 6. --init: pid 1 is kiln's init, an orphan that exits is reaped
  out=$(k run --rm --init web sh -c '(sleep 0.2 &); sleep 1; echo pid=$$; ps -o stat,comm | grep -c "^Z" ' 2>"$work/err")
  check "$mode: --init: the command is not pid 1 and no zombie is left ($(echo $out))" test "$(echo $out)" = "pid=2 0"
  out=$(k run --rm --init web sh -c 'trap "echo got-term; exit 0" TERM; kill -TERM 1; sleep 2; echo no-signal')
  check "$mode: --init: a signal to pid 1 reaches the command ($out)" test "$out" = got-term
  out=$(k run -d --init web sleep 100 2>/dev/null)
  v=$(k container inspect "$out" | json_field 'j[0]["Config"]["init"]')
  check "$mode: --init recorded in inspect ($v)" test "$v" = True
  k rm -f "$out" >/dev/null 2>&1

  # 7. --env-host: kiln's environment under the image's Env and -e
  out=$(as_mode "$mode" env KILN_ROOT="$store" RF_HOST=from-host IMGVAR=host-loses "$KILN_BIN" run --rm --env-host \
        -e RF_E=flag web sh -c 'echo $RF_HOST $IMGVAR $RF_E ${KILN_ROOT:-no-kiln-vars}')
  check "$mode: --env-host: host var, image Env wins over host, -e, no KILN_* ($out)" \
    test "$out" = "from-host image flag no-kiln-vars"
  out=$(as_mode "$mode" env KILN_ROOT="$store" RF_HOST=from-host "$KILN_BIN" run --rm web sh -c 'echo ${RF_HOST:-unset}')
  check "$mode: without --env-host the host's variables stay out ($out)" test "$out" = unset

  # 8. --label, --label-file, --annotation
  printf '# comment\nfile.k=from-file\n\nboth=file\n' >"$work/labels"
  chmod 644 "$work/labels"
  id=$(k create --label a=1 -l both=flag --label-file "$work/labels" --annotation io.kiln/x=ann web true 2>"$work/err")
  j=$(k container inspect "$id")
  out=$(json_field 'j[0]["Config"]["labels"]' <<<"$j")
  check "$mode: labels = image's + --label-file + --label ($out)" \
    test "$out" = "{'a': '1', 'both': 'flag', 'file.k': 'from-file', 'from.image': 'yes'}"
  out=$(k container inspect --format '{{.Config.Labels.a}} {{.Config.Labels.both}} {{index .Config.Annotations "io.kiln/x"}}' "$id")
  check "$mode: inspect --format {{.Config.Labels.K}} / .Config.Annotations as podman ($out)" test "$out" = "1 flag ann"
  out=$(k ps -a --filter label=both=flag -q --no-trunc)
  check "$mode: ps --filter label=K=V matches the container's own labels" test "$out" = "$id"
  out=$(json_field 'j[0]["Config"]["annotations"]' <<<"$j")
  check "$mode: --annotation recorded ($out)" test "$out" = "{'io.kiln/x': 'ann'}"
  printf 'good=1\n=bad\n' >"$work/badlabels"; chmod 644 "$work/badlabels"
  k create --label-file "$work/badlabels" web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: a bad --label-file line is named file:line (rc $rc)" grep -q "badlabels:2" "$work/err"
  k rm -f "$id" >/dev/null 2>&1

  # 9. --cidfile
  cid="$work/cid"
  id=$(k run -d --cidfile "$cid" web sleep 100 2>"$work/err")
  check "$mode: --cidfile holds the full ID, no newline" bash -c "[ \"\$(cat '$cid')\" = '$id' ] && [ \$(wc -c <'$cid') -eq 64 ]"
  n1=$(k ps -a -q | wc -l)
  k run -d --cidfile "$cid" web sleep 100 >/dev/null 2>"$work/err"; rc=$?
  n2=$(k ps -a -q | wc -l)
  check "$mode: an existing --cidfile is refused as podman, nothing created (rc $rc, $n1 -> $n2)" \
    bash -c "[ $rc -ne 0 ] && [ $n1 -eq $n2 ] && grep -q 'container id file exists. Ensure another container is not using it or delete $cid' '$work/err'"
  k rm -f "$id" >/dev/null 2>&1
  k run --rm --cidfile "$work/cid2" --pull=never no-such-image true >/dev/null 2>&1
  check "$mode: a failed run leaves no --cidfile" test ! -e "$work/cid2"

  # 10. --pull=newer: a registry that does not answer: a warning, the stored image
  k tag web 127.0.0.1:1/runflags/web >/dev/null 2>&1
  out=$(k run --rm --pull=newer 127.0.0.1:1/runflags/web echo ran 2>"$work/err"); rc=$?
  check "$mode: --pull=newer with the registry down warns and runs the stored image (rc $rc, $out)" \
    bash -c "[ $rc -eq 0 ] && [ '$out' = ran ] && grep -qi warn '$work/err'"
  k run --rm --pull=sometimes web true >/dev/null 2>&1; rc=$?
  check "$mode: --pull=sometimes refused (rc $rc)" test "$rc" -eq 2

  # 11. kiln create: the record, ports chosen now; start runs it
  id=$(k create --name rfc -p 127.0.0.1::8080 --cidfile "$work/cid3" web httpd -f -p 8080 -h /www 2>"$work/err")
  st=$(k container inspect rfc | json_field 'j[0]["State"]["Status"]')
  check "$mode: create makes a 'created' container ($st), cidfile written" \
    bash -c "[ '$st' = created ] && [ \"\$(cat '$work/cid3')\" = '$id' ]"
  hp=$(k port rfc 8080)
  k start rfc >/dev/null 2>"$work/err"
  out=$(fetch "${hp#*:}")
  check "$mode: start runs it on the port chosen at create ($hp: $out)" test "$out" = hello-www
  k stop -t 1 rfc >/dev/null 2>&1
  k start rfc >/dev/null 2>"$work/err"
  out=$(fetch "${hp#*:}")
  check "$mode: ... and again on the same port after stop/start ($out)" test "$out" = hello-www
  k rm -f rfc >/dev/null 2>&1
  id=$(k container create web true 2>"$work/err")
  check "$mode: container create works too" bash -c "[[ '$id' =~ ^[0-9a-f]{64}$ ]]"
  k rm -f "$id" >/dev/null 2>&1

  # --stop-signal: `stop` sends it instead of SIGTERM (the trap's exit code shows which came).
  k run -d --name sig --stop-signal SIGUSR1 web sh -c 'trap "exit 7" USR1; trap "exit 9" TERM; while :; do sleep 0.1; done' >/dev/null 2>"$work/err"
  sleep 0.5
  k stop -t 5 sig >/dev/null 2>>"$work/err"
  out=$(k inspect --format '{{.State.ExitCode}}' sig 2>>"$work/err")
  check "$mode: run --stop-signal SIGUSR1: stop sends it (exit code $out)" test "$out" = 7
  k rm -f sig >/dev/null 2>&1
  k run -d --stop-signal NOPE web true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: run --stop-signal NOPE is exit 2 naming the value (rc $rc)" \
    bash -c "[ $rc = 2 ] && grep -q -- '--stop-signal NOPE: not a signal' '$work/err'"

  for c in $(k ps -a -q); do k rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$work" 2>/dev/null
done
tap_done
