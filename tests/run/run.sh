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
  # A --rm container's overlay is volatile (its unmount does not sync the
  # whole file system of the upper dir); a kept container's is not.
  out=$(k run --rm busybox grep -c '^overlay / overlay .*volatile' /proc/mounts)
  check "$mode: run --rm mounts its overlay volatile" test "$out" = 1
  out=$(k run --name keep-novolatile busybox grep -c '^overlay / overlay .*volatile' /proc/mounts)
  k rm keep-novolatile >/dev/null 2>&1
  check "$mode: a kept container's overlay is not volatile" test "$out" = 0
  # Bytes that are not UTF-8 in the command and -e reach the container as
  # they are, also when a kept container is started again from its record.
  out=$(k run --name nonutf8 -e $'A=\xff' busybox sh -c 'printf "%s|%s" "$A" "$1" | od -An -tx1' x $'\xfe\xfd' 2>"$work/err")
  check "$mode: non-UTF-8 argv and -e arrive byte-exact ($out)" test "$(echo $out)" = "ff 7c fe fd"
  k start nonutf8 >/dev/null 2>&1
  code=$(k wait nonutf8)
  out=$(k logs nonutf8 2>&1 | tr -s ' \n' ' ')
  check "$mode: ... and again after start from the record ($out)" test "$out" = " ff 7c fe fd "
  k ps -a --format json >/dev/null 2>&1; rc=$?
  check "$mode: ps --format json with such a command (exit $rc)" test "$rc" -eq 0
  k inspect nonutf8 >/dev/null 2>&1; rc=$?
  check "$mode: inspect with such a command (exit $rc)" test "$rc" -eq 0
  k rm nonutf8 >/dev/null 2>&1

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
  id=$(k run -d busybox sh -c 'echo one; sleep 1.5; echo two; exit 4' 2>"$work/err")
  out=$(timeout 30 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs -f $id" 2>&1); rc=$?
  check "$mode: logs -f follows the container until it exits ($rc: $(echo $out))" test "$out" = "$(printf 'one\ntwo')" -a "$rc" -eq 0
  code=$(k wait "$id")
  check "$mode: wait prints the exit code of an exited container ($code)" test "$code" = 4
  k rm "$id" >/dev/null 2>&1

  # 3. exec sees the container's processes
  id=$(k run -d busybox sleep 1000 2>"$work/err")
  # run -d returns once the container's init runs; its command may still be
  # on its way to execve (a faster `exec` saw it before): wait for it.
  for _ in $(seq 50); do
    out=$(k exec "$id" ps 2>&1)
    grep -q 'sleep 1000' <<<"$out" && break
    sleep 0.1
  done
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

  # 4. published ports: the built-in forwarder (no tun device, no helper)
  port=$(free_port)
  id=$(k run -d -p "127.0.0.1:$port:80" busybox httpd -f -p 80 -h /var/www 2>"$work/err")
  got=""
  for _ in $(seq 1 50); do
    got=$(curl -s --max-time 2 "http://127.0.0.1:$port/index.html") && [ -n "$got" ] && break
    sleep 0.2
  done
  check "$mode: httpd with -p 127.0.0.1:$port:80 answers curl ($got)" test "$got" = "from the image"
  [ "$got" = "from the image" ] || { diag <"$work/err"; k logs "$id" 2>&1 | diag; }
  # Two connections at once: the first stays open with half a request while
  # the second is served, then the first completes.
  out=$(python3 - "$port" <<'PY' 2>&1
import socket, sys
port = int(sys.argv[1])
def body(s):
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            return got
        got += d
a = socket.create_connection(("127.0.0.1", port), timeout=10)
a.sendall(b"GET /index.html HTTP/1.0\r\n")
b = socket.create_connection(("127.0.0.1", port), timeout=10)
b.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
rb = body(b)
a.sendall(b"\r\n")
ra = body(a)
print("ok" if rb.endswith(b"from the image\n") and ra.endswith(b"from the image\n") else "bad")
PY
)
  check "$mode: -p: a second concurrent connection is served ($out)" test "$out" = ok
  check "$mode: -p: ps shows the port" bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store ps | grep -qF '127.0.0.1:$port->80/tcp'"
  out=$(k container inspect "$id" | json_field 'j[0]["Ports"][0]' 2>&1)
  check "$mode: -p: inspect lists the port ($out)" test "$out" = "127.0.0.1:$port->80/tcp"
  before=$(k ps -a -q | wc -l)
  k run --rm -p "127.0.0.1:$port:80" busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: -p on a busy host port exits 125 ($rc)" test "$rc" -eq 125
  check "$mode: ... saying -p 127.0.0.1:$port:80: address already in use" grep -qF -- "-p 127.0.0.1:$port:80: address already in use" "$work/err"
  k run -d -p "127.0.0.1:$port:80" busybox sleep 100 >/dev/null 2>"$work/err"; rc=$?
  check "$mode: -d -p on a busy host port exits 125 and leaves nothing ($rc)" test "$rc" -eq 125 -a "$(k ps -a -q | wc -l)" -eq "$before"
  k stop -t 2 "$id" >/dev/null 2>&1
  k run --rm -p "127.0.0.1:$port:80" busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: after stop the host port is free again ($rc)" test "$rc" -eq 0
  [ "$rc" -eq 0 ] || diag <"$work/err"
  k rm -f "$id" >/dev/null 2>&1
  # The host port is held from `run -d`'s first bind on (the monitor
  # inherits that socket, issue [2.3]): a process that tries to bind the port
  # all the while never gets it, and the socket listening once the container
  # runs is the one bound first (same inode in /proc/net/tcp).
  port=$(free_port)
  rm -f "$work/race" "$work/race.ready" "$work/race.stop"
  python3 - "$port" "$work/race" <<'PY' &
import os, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
def listener():
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[1] == "0100007F:%04X" % port and p[3] == "0A":
                return p[9]
    return None
open(out + ".ready", "w").close()
deadline = time.time() + 60
first = None
while first is None and time.time() < deadline:
    first = listener()
won = tries = 0
held = []
while not os.path.exists(out + ".stop") and time.time() < deadline:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tries += 1
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        won += 1
        held.append(s)  # keep it, as a competing server would
    except OSError:
        s.close()
with open(out, "w") as f:
    f.write("%s %d %d\n" % (first, won, tries))
PY
  racer=$!
  for _ in $(seq 1 100); do [ -e "$work/race.ready" ] && break; sleep 0.05; done
  id=$(k run -d -p "127.0.0.1:$port:80" busybox httpd -f -p 80 -h /var/www 2>"$work/err"); rc=$?
  now=$(python3 -c "import sys
for l in open('/proc/net/tcp').readlines()[1:]:
    p = l.split()
    if p[1] == '0100007F:%04X' % int(sys.argv[1]) and p[3] == '0A': print(p[9])" "$port" | head -1)
  touch "$work/race.stop"
  wait "$racer"
  read -r first won tries <"$work/race"
  check "$mode: -d -p while another process tries to bind the port: run succeeds ($rc)" test "$rc" -eq 0
  [ "$rc" -eq 0 ] || diag <"$work/err"
  check "$mode: ... the other process never gets the port ($won of $tries binds succeeded)" test "$won" -eq 0
  check "$mode: ... the monitor listens on the socket run bound first (inode $first, now $now)" \
    test -n "$now" -a "$first" = "$now"
  got=$(curl -s --max-time 5 "http://127.0.0.1:$port/index.html")
  check "$mode: ... and serves it ($got)" test "$got" = "from the image"
  k rm -f "$id" >/dev/null 2>&1
  # Eight connections at once, 4 MB each up, the digest back after the
  # client's half-close (sha256sum reads to EOF).
  port=$(free_port)
  id2=$(k run -d -p "127.0.0.1:$port:91" busybox nc -ll -p 91 -e sha256sum 2>"$work/err")
  out=$(python3 - "$port" <<'PY' 2>&1
import hashlib, os, socket, sys, threading, time
port = int(sys.argv[1])
data = os.urandom(4 << 20)
want = hashlib.sha256(data).hexdigest()
def one(res, i):
    for _ in range(100):  # until nc listens
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            if got:
                res[i] = got.split()[0].decode()
                return
        except OSError:
            pass
        time.sleep(0.1)
res = [None] * 8
threads = [threading.Thread(target=one, args=(res, i)) for i in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("ok" if all(r == want for r in res) else "bad %s" % res)
PY
)
  check "$mode: -p: 8 concurrent 4 MB uploads with half-close get the right digest (${out:0:60})" test "$out" = ok
  k rm -f "$id2" >/dev/null 2>&1
  # The foreground kiln run forwards too, and stops when the container exits.
  port=$(free_port)
  k run --rm -p "127.0.0.1:$port:80" busybox nc -l -p 80 -e echo foreground >/dev/null 2>"$work/err" &
  fg=$!
  out=$(python3 - "$port" <<'PY' 2>&1
import socket, sys, time
port = int(sys.argv[1])
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        got = s.recv(100)
        if got:
            print(got.decode().strip())
            break
    except OSError:
        pass
    time.sleep(0.1)
PY
)
  wait "$fg"; rc=$?
  check "$mode: foreground run -p forwards ($out) and exits 0 ($rc)" test "$out" = foreground -a "$rc" -eq 0
  # UDP: datagrams relayed per client (an echo server: the host's python3
  # with the host's /usr mounted read-only).
  if [ -x /usr/bin/python3 ]; then
    uport=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    libs=(-v /usr:/usr:ro -v /lib:/lib:ro)
    [ -e /lib64 ] && libs+=(-v /lib64:/lib64:ro)
    id=$(k run -d "${libs[@]}" -p "127.0.0.1:$uport:5353/udp" busybox /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5353))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(b"echo:" + d, a)' 2>"$work/err")
    out=$(python3 - "$uport" <<'PY' 2>&1
import socket, sys
port = int(sys.argv[1])
res = []
for name in (b"one", b"two"):  # two clients: two flows
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    for _ in range(50):
        s.sendto(name, ("127.0.0.1", port))
        try:
            res.append(s.recvfrom(100)[0].decode())
            break
        except OSError:
            pass
print(" ".join(res))
PY
)
    check "$mode: -p .../udp relays datagrams ($out)" test "$out" = "echo:one echo:two"
    [ "$out" = "echo:one echo:two" ] || { diag <"$work/err"; k logs "$id" 2>&1 | diag; }
    k rm -f "$id" >/dev/null 2>&1
  else
    tap_skip "$mode: -p /udp: no /usr/bin/python3 on the host for the echo server"
  fi

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

  # 9. an image whose steps changed nothing repeats the empty layer: it runs
  mkdir -p "$work/ctx-empty"
  printf 'FROM busybox\nRUN true\nRUN true\nRUN true\n' >"$work/ctx-empty/Containerfile"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/ctx-empty"
  k build -q -t empty-layers "$work/ctx-empty" >/dev/null 2>"$work/err" || diag <"$work/err"
  out=$(k run --rm empty-layers echo hi 2>"$work/err"); rc=$?
  check "$mode: an image with a repeated empty layer runs (rc $rc, $out)" test "$out" = hi -a "$rc" -eq 0
  [ "$rc" -eq 0 ] || diag <"$work/err"

  for c in $(k ps -a -q); do k rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$work" 2>/dev/null
done
tap_done
