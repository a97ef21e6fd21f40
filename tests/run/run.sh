#!/usr/bin/env bash
# kiln run and the container commands, with the real binary, as the
# unprivileged test user and as root (TAP). The image is `kiln import` of a
# busybox rootfs tar.
set -u
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

# The busybox rootfs tar, made here from busybox-static (not
# scripts/make-busybox-rootfs.sh: these tests need a non-root user "app" and
# content at /var/www for the volume and httpd cases).
make_busybox_tar() {
  local out=$1 root
  local bb
  bb=$(command -v busybox) || return 1
  root=$(mktemp -d /tmp/kiln-bbroot.XXXXXX)
  mkdir -p "$root"/{bin,etc,tmp,root,var/www,proc,sys,dev,home/app}
  cp "$bb" "$root/bin/busybox"
  for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  echo "from the image" >"$root/var/www/index.html"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$out" .
  rm -rf "$root"
}

WORK_ROOT=$(mktemp -d /tmp/kiln-run-it.XXXXXX)
chmod 755 "$WORK_ROOT"
trap 'rm -rf "$WORK_ROOT" 2>/dev/null' EXIT
make_busybox_tar "$WORK_ROOT/busybox.tar" || { echo "1..0 # SKIP cannot make a busybox rootfs"; exit 0; }
chmod 644 "$WORK_ROOT/busybox.tar"

check() {  # check DESCRIPTION COMMAND...: ok when the command succeeds
  local desc=$1; shift
  if "$@"; then tap_ok "$desc"; else tap_not_ok "$desc"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

json_field() {  # json_field PYEXPR: evaluates on the JSON read from stdin as `j`
  python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"
}

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store="$work/store"
  k() { kiln_as "$mode" "$store" "$@"; }
  if ! k import "$WORK_ROOT/busybox.tar" busybox >"$work/import.out" 2>&1; then
    diag <"$work/import.out"
    tap_not_ok "$mode: import busybox"
    continue
  fi
  tap_ok "$mode: import busybox"

  # 1. foreground, output and exit status
  out=$(k run --rm busybox echo hi 2>"$work/err"); rc=$?
  check "$mode: run --rm busybox echo hi prints hi, exit 0" test "$out" = hi -a "$rc" -eq 0
  [ "$rc" -eq 0 ] || diag <"$work/err"
  k run --rm busybox sh -c 'exit 3' >/dev/null 2>&1; rc=$?
  check "$mode: exit 3 gives 3" test "$rc" -eq 3
  k run --rm busybox no-such-command >/dev/null 2>"$work/err"; rc=$?
  check "$mode: a missing command gives 127" test "$rc" -eq 127
  out=$(k run --rm -e FOO=bar -w /tmp -u app busybox sh -c 'echo $FOO $(pwd) $(id -u) $HOME')
  check "$mode: -e -w -u honoured ($out)" test "$out" = "bar /tmp 1000 /home/app"
  out=$(echo piped | k run --rm -i busybox cat)
  check "$mode: -i pipes stdin" test "$out" = piped
  out=$(k run --rm --hostname box1 busybox hostname)
  check "$mode: --hostname" test "$out" = box1
  k run --rm --read-only busybox touch /x >/dev/null 2>&1; rc=$?
  check "$mode: --read-only refuses writes" test "$rc" -ne 0
  out=$(k run --rm --entrypoint echo busybox one two)
  check "$mode: --entrypoint" test "$out" = "one two"
  out=$(k run --rm --network none busybox cat /proc/net/dev | grep -c ':')
  check "$mode: --network none has only lo ($out interfaces)" test "$out" = 1

  # 2. detached: run -d, ps, logs, stop, rm
  id=$(k run -d --name web busybox sh -c 'echo started; trap "echo bye; exit 0" TERM; while :; do sleep 0.2; done' 2>"$work/err")
  check "$mode: run -d prints an id" test "${#id}" -eq 64
  [ "${#id}" -eq 64 ] || diag <"$work/err"
  sleep 0.5
  check "$mode: ps lists the running container" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store ps | grep -q ' web\$'"
  check "$mode: ps -q prints the short id" test "$(k ps -q)" = "${id:0:12}"
  check "$mode: logs shows the output" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs web | grep -qx started"
  k stop -t 5 web >/dev/null 2>"$work/err"; rc=$?
  check "$mode: stop" test "$rc" -eq 0
  state=$(k ps -a --format json | json_field '[c["State"]+":"+str(c["ExitCode"]) for c in j if c["Names"][0]=="web"][0]')
  check "$mode: ps -a reports exited:0 after stop ($state)" test "$state" = "exited:0"
  check "$mode: logs has the trap's output" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs --tail 1 web | grep -qx bye"
  k rm web >/dev/null 2>&1
  check "$mode: rm removes it" test -z "$(k ps -a -q)"

  # 3. exec sees the container's processes
  id=$(k run -d busybox sleep 1000 2>"$work/err")
  out=$(k exec "$id" ps 2>&1)
  check "$mode: exec ps sees the container's sleep" bash -c "grep -q 'sleep 1000' <<<'$out'"
  out=$(k exec -u app "$id" id -u 2>&1)
  check "$mode: exec -u app" test "$out" = 1000
  k exec "$id" sh -c 'exit 5'; rc=$?
  check "$mode: exec exit status" test "$rc" -eq 5
  k kill -s TERM "$id" >/dev/null 2>&1
  code=$(k wait "$id")
  check "$mode: kill -s TERM + wait gives 143 ($code)" test "$code" = 143
  k start "$id" >/dev/null 2>"$work/err"
  check "$mode: start runs it again" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store ps -q | grep -q ${id:0:12}"
  k rm -f "$id" >/dev/null 2>&1
  check "$mode: rm -f removes a running container" test -z "$(k ps -a -q)"

  # 4. published port: busybox httpd answers curl on the host
  port=$(free_port)
  id=$(k run -d -p "127.0.0.1:$port:80" busybox httpd -f -p 80 -h /var/www 2>"$work/err")
  got=""
  for _ in $(seq 1 50); do
    got=$(curl -s --max-time 2 "http://127.0.0.1:$port/index.html") && [ -n "$got" ] && break
    sleep 0.2
  done
  if [ "$got" != "from the image" ] && grep -q "failed to configure the network namespace" "$work/err"; then
    # Known gap (issue [6/7]): pasta 2023-03 cannot join kiln's user namespace
    # here, and /dev/net/tun is 0600 for the unprivileged user.
    tap_skip "$mode: httpd with -p: the network helper cannot configure the namespace on this host"
  else
    check "$mode: httpd with -p 127.0.0.1:$port:80 answers curl ($got)" test "$got" = "from the image"
    [ "$got" = "from the image" ] || { diag <"$work/err"; k logs "$id" 2>&1 | diag; }
  fi
  k rm -f "$id" >/dev/null 2>&1

  # 5. named volume keeps data across rm and a new run; initialised from the image
  k run --name writer -v data:/data busybox sh -c 'echo kept > /data/f' >/dev/null 2>"$work/err"
  k rm writer >/dev/null 2>&1
  out=$(k run --rm -v data:/data busybox cat /data/f 2>/dev/null)
  check "$mode: named volume keeps data ($out)" test "$out" = kept
  check "$mode: volume ls lists it" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store volume ls -q | grep -qx data"
  out=$(k run --rm -v www:/var/www busybox cat /var/www/index.html 2>/dev/null)
  check "$mode: a new volume starts with the image's content ($out)" test "$out" = "from the image"
  k volume rm data www >/dev/null 2>&1
  check "$mode: volume rm" test -z "$(k volume ls -q)"

  # 6. -v bind writes appear on the host with the user's ownership
  mkdir -p "$work/host"
  [ "$mode" = user ] && chown "$KILN_TEST_USER" "$work/host"
  k run --rm -v "$work/host:/mnt" busybox sh -c 'echo x > /mnt/out' 2>"$work/err"
  want=$([ "$mode" = user ] && echo "$KILN_TEST_USER" || echo root)
  check "$mode: -v write lands on the host owned by $want" test "$(stat -c %U "$work/host/out" 2>/dev/null)" = "$want"
  k run --rm -v "$work/host:/mnt:ro" busybox sh -c 'echo y > /mnt/out2' >/dev/null 2>&1; rc=$?
  check "$mode: -v :ro refuses writes" test "$rc" -ne 0 -a ! -e "$work/host/out2"
  out=$(k run --rm --mount type=tmpfs,target=/scratch busybox sh -c 'mount | grep " /scratch "' 2>&1)
  check "$mode: --mount type=tmpfs" bash -c "grep -q tmpfs <<<'$out'"

  # 7. killing the monitor: ps reports exited, rm removes
  id=$(k run -d busybox sleep 1000 2>"$work/err")
  mpid=$(k container inspect "$id" | json_field 'j[0]["State"]["MonitorPid"]')
  if [ -n "$mpid" ] && [ "$mpid" -gt 0 ]; then kill -9 "$mpid"; fi
  sleep 0.5
  state=$(k ps -a --format json | json_field '[c["State"] for c in j][0]' 2>/dev/null)
  check "$mode: killed monitor: ps reports exited ($state)" test "$state" = exited
  k rm "$id" >/dev/null 2>"$work/err"
  check "$mode: ... and rm removes it" bash -c "! grep -q '^${id:0:12}' <<<'$(k ps -a -q)'"

  # 8. resource limits are applied or refused clearly, never a crash
  k run --rm --memory 64m busybox true >/dev/null 2>"$work/err"; rc=$?
  if [ "$rc" -eq 0 ]; then tap_ok "$mode: --memory applied"
  else check "$mode: --memory refused with a clear message (rc $rc)" grep -q "delegated cgroup" "$work/err"; fi

  for c in $(k ps -a -q); do k rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$work" 2>/dev/null
done
tap_done
