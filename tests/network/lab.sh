#!/bin/bash
# The course's network lab (issue [2.5]), as the test user and as root (TAP):
# `network create safe-net`, A and B on it ping each other by IP, C on
# another network cannot reach them; --ip and aliases; kill -9 of every kiln
# process and a fresh `run --ip` of the same address; the holder (and with it
# the namespace and the bridges) gone after the last container. Real network
# namespaces: the bridges live in the holder's namespace, private to this
# run's store (its own run root); no packet leaves them.
. "$(dirname "$0")/../integration/lib.sh"

# The responder forwards names it does not know to the resolvers of
# $KILN_RESOLV_CONF: a resolver this test runs on a loopback address of its
# own (port 53 needs root: without it the forwarding checks are skipped).
dns_dir=$(mktemp -d /tmp/kiln-dns.XXXXXX); chmod 755 "$dns_dir"
UP_PID=""
UP2_PID=""
if [ "$(id -u)" -eq 0 ]; then
  up_addr=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
  python3 "$(dirname "$0")/upstream_dns.py" "$up_addr" 53 "$dns_dir/queries" >"$dns_dir/up.out" 2>&1 &
  UP_PID=$!
  for _ in $(seq 50); do grep -q ready "$dns_dir/up.out" 2>/dev/null && break; sleep 0.1; done
  echo "nameserver $up_addr" >"$dns_dir/resolv.conf"
  up2_addr=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
  python3 "$(dirname "$0")/upstream_dns.py" "$up2_addr" 53 "$dns_dir/queries2" >"$dns_dir/up2.out" 2>&1 &
  UP2_PID=$!
  for _ in $(seq 50); do grep -q ready "$dns_dir/up2.out" 2>/dev/null && break; sleep 0.1; done
else
  echo "nameserver 127.0.0.1" >"$dns_dir/resolv.conf"
fi
chmod 644 "$dns_dir/resolv.conf"
export KILN_RESOLV_CONF=$dns_dir/resolv.conf
trap '[ -n "$UP_PID" ] && kill $UP_PID $UP2_PID 2>/dev/null; rm -rf "$dns_dir"' EXIT

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store=$work/store
  # The run root inside the store (not $XDG_RUNTIME_DIR): the holder is this run's.
  k() { XDG_RUNTIME_DIR= kiln_as "$mode" "$store" "$@"; }
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import busybox"; continue
  fi
  ip_of() {  # CONTAINER NETWORK
    k inspect --type container "$1" 2>/dev/null | python3 -c '
import json, sys
print(json.load(sys.stdin)[0]["NetworkSettings"]["Networks"][sys.argv[1]]["IPAddress"])' "$2" 2>/dev/null
  }
  holder_pid() { cat "$store"/run/network-*/holder.pid 2>/dev/null; }

  k network create safe-net >/dev/null && k network create other-net >/dev/null
  sub=$(k network inspect -f '{{range .subnets}}{{.subnet}}{{end}}' safe-net)
  out=$(k run -d --name a --network safe-net busybox sleep 600 2>&1) &&
    out=$(k run -d --name b --network safe-net:alias=bee --ip "${sub%.0/24}.77" busybox sleep 600 2>&1) &&
    out=$(k run -d --name c --network podman busybox sleep 600 2>&1)
  if [ $? -ne 0 ]; then
    tap_not_ok "$mode: run -d --network: $out"; cat "$store"/run/network-*/holder.log 2>/dev/null | diag
    k rm -f a b c >/dev/null 2>&1; rm -rf "$work"; continue
  fi
  ipa=$(ip_of a safe-net); ipb=$(ip_of b safe-net); ipc=$(ip_of c podman)
  case "$ipa" in "${sub%.0/24}".*) tap_ok "$mode: A has $ipa from safe-net's $sub (inspect NetworkSettings)";;
    *) tap_not_ok "$mode: A's address: '$ipa' (subnet $sub)";; esac
  [ "$ipb" = "${sub%.0/24}.77" ] && tap_ok "$mode: --ip gives B $ipb" || tap_not_ok "$mode: B's address: '$ipb'"
  [ -n "$ipc" ] && [ "${ipc%.*}" != "${ipa%.*}" ] && tap_ok "$mode: C on the default network (podman) has $ipc" || tap_not_ok "$mode: C: '$ipc'"

  out=$(k exec a ping -c1 -W2 "$ipb" 2>&1) && tap_ok "$mode: exec A ping -c1 B ($ipb)" ||
    { tap_not_ok "$mode: A ping B"; printf '%s\n' "$out" | diag; }
  out=$(k exec b ping -c1 -W2 "$ipa" 2>&1) && tap_ok "$mode: exec B ping -c1 A ($ipa)" ||
    { tap_not_ok "$mode: B ping A"; printf '%s\n' "$out" | diag; }
  # TCP too, both ways of the bridge: B serves, A fetches.
  k exec b sh -c 'echo hello-from-b > /tmp/i; httpd -p 8080 -h /tmp' >/dev/null 2>&1
  # (busybox's wget crashes in this image: nc speaks the HTTP.)
  fetch() { k exec "$1" sh -c "printf 'GET /i HTTP/1.0\r\n\r\n' | nc -w 3 $2 8080" 2>/dev/null | tail -1; }
  got=$(fetch a "$ipb")
  [ "$got" = hello-from-b ] && tap_ok "$mode: A reaches B's TCP server" || tap_not_ok "$mode: A wget B: $got"
  if k exec c ping -c1 -W1 "$ipa" >/dev/null 2>&1; then
    tap_not_ok "$mode: C (default network) reached A at $ipa"
  else
    tap_ok "$mode: C on the default network cannot reach A"
  fi
  if k run --rm busybox ping -c1 -W1 "$ipa" >/dev/null 2>&1; then
    tap_not_ok "$mode: a container on kiln's private network reached A at $ipa"
  else
    tap_ok "$mode: a container on kiln's private network (no --network) cannot reach A"
  fi
  mode_of() { k inspect --type container -f '{{.HostConfig.NetworkMode}}' "$1" 2>&1; }
  [ "$(mode_of a)" = bridge ] && tap_ok "$mode: inspect A: HostConfig.NetworkMode bridge" || tap_not_ok "$mode: A's NetworkMode: $(mode_of a)" 
  if [ "$(fetch c "$ipb")" = hello-from-b ]; then
    tap_not_ok "$mode: C reached B's server"
  else
    tap_ok "$mode: C cannot reach B's server"
  fi
  hosts=$(k exec a cat /etc/hosts 2>&1)
  printf '%s\n' "$hosts" | grep -Eq "^$ipa[[:space:]].*\ba\b" && tap_ok "$mode: /etc/hosts names A's own address" ||
    tap_not_ok "$mode: A's /etc/hosts: $hosts"

  # Names: the responder on safe-net's gateway knows A, B and B's alias; C's
  # network's responder does not (the query goes upstream: NXDOMAIN).
  resolved() { k exec "$1" nslookup "$2" 2>/dev/null | awk '/^Name:/{n=1} n && /^Address/{print $NF}' | head -1; }
  got=$(resolved a b); [ "$got" = "$ipb" ] && tap_ok "$mode: A resolves B's name to $ipb" || tap_not_ok "$mode: nslookup b from A: '$got'"
  got=$(resolved b a); [ "$got" = "$ipa" ] && tap_ok "$mode: B resolves A's name to $ipa" || tap_not_ok "$mode: nslookup a from B: '$got'"
  got=$(resolved a bee); [ "$got" = "$ipb" ] && tap_ok "$mode: A resolves B's alias bee" || tap_not_ok "$mode: nslookup bee: '$got'"
  got=$(resolved a b.dns.podman); [ "$got" = "$ipb" ] && tap_ok "$mode: b.dns.podman resolves" || tap_not_ok "$mode: nslookup b.dns.podman: '$got'"
  out=$(k exec a ping -c1 -W2 b 2>&1) && tap_ok "$mode: exec A ping -c1 b (by name)" ||
    { tap_not_ok "$mode: A ping b by name"; printf '%s\n' "$out" | diag; }
  out=$(k exec b ping -c1 -W2 a 2>&1) && tap_ok "$mode: exec B ping -c1 a (by name)" ||
    { tap_not_ok "$mode: B ping a by name"; printf '%s\n' "$out" | diag; }
  got=$(resolved c a); [ -z "$got" ] && tap_ok "$mode: C (default network) cannot resolve A" || tap_not_ok "$mode: C resolved a to $got"
  got=$(k exec c nslookup a "${sub%.0/24}.1" 2>/dev/null | awk '/^Name:/{n=1} n && /^Address/{print $NF}' | head -1)
  [ -z "$got" ] && tap_ok "$mode: C cannot ask safe-net's responder either" || tap_not_ok "$mode: C got a=$got from safe-net's responder"
  grep -q "^nameserver ${sub%.0/24}.1$" <<<"$(k exec a cat /etc/resolv.conf 2>&1)" &&
    tap_ok "$mode: A's resolv.conf points at safe-net's gateway" || tap_not_ok "$mode: A's resolv.conf: $(k exec a cat /etc/resolv.conf 2>&1)"
  if [ -n "$UP_PID" ]; then
    got=$(resolved a outside.test)
    [ "$got" = 192.0.2.7 ] && grep -qx outside.test "$dns_dir/queries" &&
      tap_ok "$mode: other names are forwarded to the host's resolver (the test's, on $up_addr)" ||
      tap_not_ok "$mode: forwarding: '$got' $(cat "$dns_dir/queries" 2>/dev/null | tr '\n' ' ')"
  else
    tap_skip "$mode: forwarding needs a resolver on port 53 (root)"
  fi

  names=$(k ps --filter network=safe-net --format '{{.Names}}' 2>&1 | sort | tr '\n' ' ')
  [ "$names" = "a b " ] && tap_ok "$mode: ps --filter network=safe-net lists A and B" || tap_not_ok "$mode: ps --filter network: $names"

  # Live: a container started later is resolvable at once, and not after rm.
  k run -d --name dd --network safe-net busybox sleep 600 >/dev/null 2>&1
  ipd=$(ip_of dd safe-net)
  got=$(resolved a dd); [ -n "$ipd" ] && [ "$got" = "$ipd" ] && tap_ok "$mode: a container started later (dd) resolves at once" ||
    tap_not_ok "$mode: nslookup dd: '$got' (dd has '$ipd')"
  k rm -f dd >/dev/null 2>&1
  got=$(resolved a dd); [ -z "$got" ] && tap_ok "$mode: dd's name is gone after rm" || tap_not_ok "$mode: dd still resolves to $got"

  # DNS details, asked from inside A's network namespace with a client of
  # the test's (AAAA of a known name: an empty NOERROR; PTR of B's address;
  # the same over TCP).
  pid_of() { k inspect --type container "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["Pid"])' 2>/dev/null; }
  in_ctr() {  # CONTAINER CMD...: a host command in the container's network namespace
    local p; p=$(pid_of "$1"); shift
    as_mode "$mode" nsenter --preserve-credentials --user="/proc/$(holder_pid)/ns/user" --net="/proc/$p/ns/net" "$@"
  }
  q() { in_ctr a python3 "$(dirname "$0")/dns_query.py" "${sub%.0/24}.1" "$@" 2>&1 | tr '\n' ' '; }
  got=$(q b.dns.podman AAAA); [ "$got" = "rcode=0 " ] && tap_ok "$mode: AAAA of a known name: empty answer, NOERROR" || tap_not_ok "$mode: AAAA b: $got"
  rev=$(echo "$ipb" | awk -F. '{print $4"."$3"."$2"."$1".in-addr.arpa"}')
  got=$(q "$rev" PTR); [ "$got" = "rcode=0 PTR b.dns.podman " ] && tap_ok "$mode: PTR of B's address names b" || tap_not_ok "$mode: PTR $rev: $got"
  got=$(q bee A tcp); [ "$got" = "rcode=0 A $ipb " ] && tap_ok "$mode: a query over TCP is answered" || tap_not_ok "$mode: TCP query: $got"
  got=$(q nobody.dns.podman A); [ "$got" = "rcode=3 " ] && tap_ok "$mode: an unknown name under dns.podman: NXDOMAIN" || tap_not_ok "$mode: nobody.dns.podman: $got"

  # network connect: C (other-net) joins safe-net while it runs; A is
  # reachable and resolvable from C, C (and its new alias) from A; disconnect
  # undoes it. No restart of anyone.
  out=$(k network connect --alias cee safe-net c 2>&1) && tap_ok "$mode: network connect --alias cee safe-net c" ||
    { tap_not_ok "$mode: network connect: $out"; cat "$store"/run/network-*/holder.log 2>/dev/null | diag; }
  ipc2=$(ip_of c safe-net)
  case "$ipc2" in "${sub%.0/24}".*) tap_ok "$mode: C has $ipc2 on safe-net too (inspect)";; *) tap_not_ok "$mode: C on safe-net: '$ipc2'";; esac
  out=$(k exec c ping -c1 -W2 "$ipa" 2>&1) && tap_ok "$mode: after connect, C pings A ($ipa)" ||
    { tap_not_ok "$mode: C ping A after connect"; printf '%s\n' "$out" | diag; }
  got=$(resolved c a); [ "$got" = "$ipa" ] && tap_ok "$mode: after connect, C resolves a" || tap_not_ok "$mode: C resolves a: '$got'"
  # podman's live edits: C's new address in its /etc/hosts, safe-net's
  # responder first in its resolv.conf (no restart).
  hosts=$(k exec c cat /etc/hosts 2>&1); resolv=$(k exec c cat /etc/resolv.conf 2>&1)
  printf '%s\n' "$hosts" | grep -Eq "^$ipc2[[:space:]].*\bc\b" &&
    [ "$(printf '%s\n' "$resolv" | grep -m1 '^nameserver')" = "nameserver ${sub%.0/24}.1" ] &&
    printf '%s\n' "$resolv" | grep -qx "nameserver ${ipc%.*}.1" &&
    tap_ok "$mode: after connect, C's /etc/hosts has $ipc2 and resolv.conf asks safe-net's gateway first" ||
    { tap_not_ok "$mode: C's files after connect"; printf '%s\n' "$hosts" "$resolv" | diag; }
  got=$(resolved a cee); [ -n "$ipc2" ] && [ "$got" = "$ipc2" ] && tap_ok "$mode: A resolves C's new alias cee to $ipc2" || tap_not_ok "$mode: nslookup cee: '$got'"
  out=$(k network connect safe-net c 2>&1); rc=$?
  [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "already connected" && tap_ok "$mode: a second connect is refused: $out" || tap_not_ok "$mode: second connect: rc=$rc $out"
  out=$(k network disconnect safe-net c 2>&1) && tap_ok "$mode: network disconnect safe-net c" || tap_not_ok "$mode: disconnect: $out"
  if k exec c ping -c1 -W1 "$ipa" >/dev/null 2>&1; then tap_not_ok "$mode: C still reaches A after disconnect"; else tap_ok "$mode: after disconnect, C cannot reach A"; fi
  got=$(resolved a cee); [ -z "$got" ] && tap_ok "$mode: after disconnect, cee does not resolve" || tap_not_ok "$mode: cee still resolves to $got"
  hosts=$(k exec c cat /etc/hosts 2>&1); resolv=$(k exec c cat /etc/resolv.conf 2>&1)
  ! printf '%s\n' "$hosts" | grep -q "^$ipc2[[:space:]]" && ! printf '%s\n' "$resolv" | grep -qx "nameserver ${sub%.0/24}.1" &&
    printf '%s\n' "$resolv" | grep -qx "nameserver ${ipc%.*}.1" &&
    tap_ok "$mode: after disconnect, C's /etc/hosts and resolv.conf are as before" ||
    { tap_not_ok "$mode: C's files after disconnect"; printf '%s\n' "$hosts" "$resolv" | diag; }
  got=$(k inspect --type container c 2>/dev/null | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)[0]["NetworkSettings"]["Networks"]) + " ")')
  [ "$got" = "podman " ] && tap_ok "$mode: C's record lists podman only" || tap_not_ok "$mode: C's networks: $got"

  # connect of a stopped container: recorded, attached when it starts.
  k create --name st --network other-net busybox sleep 600 >/dev/null 2>&1
  out=$(k network connect safe-net st 2>&1) && k start st >/dev/null 2>&1 &&
    out=$(k exec st ping -c1 -W2 "$ipa" 2>&1) && got=$(resolved a st) && [ -n "$got" ] && [ "$got" = "$(ip_of st safe-net)" ] &&
    tap_ok "$mode: connect of a created container; after start it reaches A and A resolves it ($got)" ||
    { tap_not_ok "$mode: connect before start: $out (st resolves to '$got')"; }
  k rm -f st >/dev/null 2>&1
  # --dns on a network: the responder forwards this container's other names
  # to that server (a second resolver of the test's), not the host's.
  if [ -n "$UP_PID" ]; then
    got=$(k run --rm --network safe-net --dns "$up2_addr" busybox nslookup viadns.test 2>&1)
    grep -qx viadns.test "$dns_dir/queries2" 2>/dev/null && ! grep -qx viadns.test "$dns_dir/queries" &&
      tap_ok "$mode: --dns $up2_addr: the responder forwards there" ||
      tap_not_ok "$mode: --dns forwarding: $(cat "$dns_dir/queries2" 2>/dev/null | tr '\n' ' ')"
  else
    tap_skip "$mode: --dns forwarding needs a resolver on port 53 (root)"
  fi

  # --network container:a shares A's namespace: A's address, names via
  # A's resolver; a container not on a container network is refused.
  out=$(k run --rm --network container:a busybox sh -c "ip -4 -o addr show eth0; ping -c1 -W2 b >/dev/null && echo pinged-b" 2>&1)
  printf '%s' "$out" | grep -q "inet $ipa/" && printf '%s' "$out" | grep -q pinged-b &&
    tap_ok "$mode: --network container:a has A's eth0 ($ipa) and resolves b" ||
    { tap_not_ok "$mode: --network container:a"; printf '%s\n' "$out" | diag; }
  k create --name shares --network container:a busybox true >/dev/null 2>&1
  ida=$(k inspect --type container -f '{{.Id}}' a 2>/dev/null)
  [ -n "$ida" ] && [ "$(mode_of shares)" = "container:$ida" ] &&
    [ "$(k inspect --type container -f '{{.Config.network}}' shares 2>&1)" = "container:$ida" ] &&
    tap_ok "$mode: inspect of --network container:a shows container:ID (HostConfig.NetworkMode, Config.network)" ||
    tap_not_ok "$mode: inspect of container:a: $(mode_of shares)"
  k rm -f shares >/dev/null 2>&1
  k run -d --name lonely --network none busybox sleep 600 >/dev/null 2>&1
  out=$(k run --rm --network container:lonely busybox true 2>&1); rc=$?
  [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "not on a container network" && tap_ok "$mode: container:ID of a container on no network: exit 2: $out" ||
    tap_not_ok "$mode: container:lonely: rc=$rc $out"
  k rm -f lonely >/dev/null 2>&1

  # Several --network flags: one interface per network.
  # (A first ping under CI load can miss while the new veths come up: up
  # to three tries each, and each failure is named for the diagnostics.)
  out=$(k run --rm --network safe-net --network podman busybox sh -c "
    reach() { for i in 1 2 3; do ping -c1 -W3 \$1 >/dev/null 2>&1 && return 0; done; echo unreachable \$1; ip -4 -o addr show; return 1; }
    reach $ipa && reach $ipc && ip -4 -o addr show | grep -c eth" 2>&1)
  [ "$out" = 2 ] && tap_ok "$mode: run --network safe-net --network podman: eth0 and eth1, reaches A and C" ||
    { tap_not_ok "$mode: two --network flags"; printf '%s\n' "$out" | diag; }

  # /etc/hosts and resolv.conf flags on a network: --add-host first,
  # host.containers.internal, dns.podman kept first in the search list.
  out=$(k run --rm --network safe-net --add-host db.test:192.0.2.9 --dns-search example.test --dns-option ndots:2 \
    busybox sh -c 'cat /etc/hosts /etc/resolv.conf' 2>&1)
  if [ "$(printf '%s\n' "$out" | head -1)" = "$(printf '192.0.2.9\tdb.test')" ] &&
     printf '%s\n' "$out" | grep -q "host.containers.internal" &&
     printf '%s\n' "$out" | grep -qx "search dns.podman example.test" &&
     printf '%s\n' "$out" | grep -qx "nameserver ${sub%.0/24}.1" && printf '%s\n' "$out" | grep -qx "options ndots:2"; then
    tap_ok "$mode: --add-host, --dns-search, --dns-option on a network"
  else
    tap_not_ok "$mode: name flags on a network"; printf '%s\n' "$out" | diag
  fi

  # Outbound: through slirp4netns on the holder's namespace when this user
  # may use /dev/net/tun (root here), to a server of the test's on this
  # machine's own address; never from an --internal network; and without
  # slirp4netns no way out at all (closed).
  host_ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
  if [ -n "$host_ip" ]; then
    python3 -c '
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(8); print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello-from-host\n"); c.close()' "$host_ip" >"$dns_dir/srv.$mode" 2>&1 &
    srv=$!
    for _ in $(seq 50); do [ -s "$dns_dir/srv.$mode" ] && break; sleep 0.1; done
    hp=$(head -1 "$dns_dir/srv.$mode")
    k network create --internal inside-net >/dev/null
    got=$(k run --rm --network safe-net busybox nc -w 3 "$host_ip" "$hp" 2>/dev/null)
    if as_mode "$mode" test -r /dev/net/tun -a -w /dev/net/tun && command -v slirp4netns >/dev/null; then
      [ "$got" = hello-from-host ] && tap_ok "$mode: outbound from safe-net through slirp4netns ($host_ip:$hp)" ||
        { tap_not_ok "$mode: outbound from safe-net: '$got'"; cat "$store"/run/network-*/*.log 2>/dev/null | diag; }
    else
      [ -z "$got" ] && tap_ok "$mode: no slirp4netns usable (/dev/net/tun): no outbound, closed" || tap_not_ok "$mode: outbound without a helper: '$got'"
    fi
    got=$(k run --rm --network inside-net busybox nc -w 2 "$host_ip" "$hp" 2>/dev/null)
    [ -z "$got" ] && tap_ok "$mode: an --internal network has no way out" || tap_not_ok "$mode: internal network reached $host_ip: '$got'"
    kill $srv 2>/dev/null; wait $srv 2>/dev/null
    k network rm inside-net >/dev/null 2>&1
  else
    tap_skip "$mode: outbound: this machine has no global IPv4 address"; tap_skip "$mode: internal"
  fi

  # -p for a container on a network: a web container reached from the host
  # through the published port (a free one), and from A by its name.
  out=$(k run -d --name web --network safe-net -p 127.0.0.1::8080 busybox sh -c 'echo hello-web >/tmp/i; httpd -f -p 8080 -h /tmp' 2>&1)
  hp=$(k port web 8080 2>/dev/null); hp=${hp##*:}
  got=""
  for _ in $(seq 30); do
    got=$(python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"GET /i HTTP/1.0\r\n\r\n"); d = b""
while True:
    b = s.recv(4096)
    if not b: break
    d += b
print(d.split(b"\r\n\r\n", 1)[-1].decode().strip())' "$hp" 2>/dev/null) && [ -n "$got" ] && break
    sleep 0.1
  done
  [ "$got" = hello-web ] && tap_ok "$mode: -p on safe-net: the host reaches web on 127.0.0.1:$hp" ||
    { tap_not_ok "$mode: -p on a network: '$got' (port '$hp')"; printf '%s\n' "$out" | diag; }
  got=$(k exec a sh -c "printf 'GET /i HTTP/1.0\r\n\r\n' | nc -w 3 web 8080" 2>/dev/null | tail -1)
  [ "$got" = hello-web ] && tap_ok "$mode: A reaches web by name" ||
    { tap_not_ok "$mode: A -> web by name: '$got'"; { k exec a nslookup web; k exec a sh -c "printf 'GET /i HTTP/1.0\r\n\r\n' | nc -w 3 web 8080"; } 2>&1 | diag; }

  # kiln build --network safe-net: RUN steps reach web by name (a database
  # started on the network, in the issue's words); without it they cannot.
  bctx=$work/bctx; mkdir -p "$bctx"; chmod 755 "$bctx"
  printf 'FROM busybox\nRUN printf "GET /i HTTP/1.0\\r\\n\\r\\n" | nc -w 3 web 8080 | tail -1 > /got; cat /etc/resolv.conf; test -s /got\n' >"$bctx/Containerfile"
  chmod 644 "$bctx/Containerfile"
  out=$(k build --network safe-net -t netbuild "$bctx" 2>&1)
  got=$(k run --rm --network none netbuild cat /got 2>&1)
  [ "$got" = hello-web ] && tap_ok "$mode: build --network safe-net: a RUN step reaches web by name" ||
    { tap_not_ok "$mode: build --network safe-net: '$got'"; printf '%s\n' "$out" | tail -15 | diag; }
  out=$(k build --no-cache -t netbuild2 "$bctx" 2>&1); rc=$?
  [ $rc -ne 0 ] && tap_ok "$mode: build without --network NAME: the RUN step cannot reach web" ||
    tap_not_ok "$mode: build on the private network reached web"
  out=$(k build --network no-such-net -t netbuild3 "$bctx" 2>&1); rc=$?
  [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "unable to find network with name or ID no-such-net" &&
    tap_ok "$mode: build --network of an unknown network: $(printf '%s' "$out" | tail -1)" ||
    tap_not_ok "$mode: build --network no-such-net: rc=$rc $out"
  # The build's address is free again: its namespace is gone, a new build
  # and a container take addresses without a clash.
  out=$(k build --no-cache --network safe-net -t netbuild "$bctx" 2>&1) && tap_ok "$mode: a second build --network safe-net" ||
    { tap_not_ok "$mode: second build --network"; printf '%s\n' "$out" | tail -5 | diag; }
  k rmi netbuild >/dev/null 2>&1
  k rm -f web >/dev/null 2>&1

  # A second run of B's address is refused while B exists.
  out=$(k run --rm --network safe-net --ip "$ipb" busybox true 2>&1); rc=$?
  [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "already allocated" && tap_ok "$mode: --ip of a used address: $out" ||
    tap_not_ok "$mode: --ip reuse: rc=$rc $out"
  # A foreground container on the network reaches A and is gone afterwards.
  out=$(k run --rm --network safe-net busybox ping -c1 -W2 "$ipa" 2>&1) && tap_ok "$mode: run --rm --network safe-net pings A" ||
    { tap_not_ok "$mode: foreground run on safe-net"; printf '%s\n' "$out" | diag; }

  # network rm refuses a network in use.
  out=$(k network rm safe-net 2>&1); rc=$?
  [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "is being used by container" && tap_ok "$mode: network rm of a network in use: $out" ||
    tap_not_ok "$mode: network rm in use: rc=$rc $out"

  # kill -9 of every kiln process (monitors and the holder), then B's
  # address again: no allocation file left anything behind.
  hp=$(holder_pid)
  pids=""
  netns=$(readlink "/proc/$hp/ns/net" 2>/dev/null)
  for c in a b c; do pids="$pids $(k inspect --type container $c 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["MonitorPid"])' 2>/dev/null)"; done
  [ -n "$hp" ] && pids="$pids $hp"
  # Every kiln process of this test: the monitors, the holder and all they
  # started (sandbox helpers, containers' inits, slirp4netns).
  descend() { local p; for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$p"; descend "$p"; done; }
  all=""; for p in $pids; do [ "$p" -gt 1 ] 2>/dev/null && all="$all $p $(descend "$p")"; done
  for p in $all; do kill -9 "$p" 2>/dev/null; done
  sleep 0.5
  k rm -f a c >/dev/null 2>&1
  k rm -f b >/dev/null 2>&1
  out=$(k run --rm --network safe-net --ip "$ipb" busybox sh -c "ip -4 addr show eth0 2>/dev/null || ifconfig eth0" 2>&1)
  printf '%s' "$out" | grep -q "$ipb" && tap_ok "$mode: after kill -9 of everything, run --ip $ipb works" ||
    { tap_not_ok "$mode: run --ip after kill -9"; printf '%s\n' "$out" | diag; }

  # The last container gone: the holder exits, its namespace and bridges with it.
  gone=no
  for _ in $(seq 30); do
    hp=$(holder_pid)
    if [ -z "$hp" ] || ! kill -0 "$hp" 2>/dev/null; then gone=yes; break; fi
    sleep 0.1
  done
  [ $gone = yes ] && tap_ok "$mode: the namespace holder is gone after the last container" ||
    tap_not_ok "$mode: holder $(holder_pid) still runs"
  # Its network namespace (and the bridges in it) with it: no process of
  # ours is in it, and the host never had a kiln bridge or veth end.
  left=""
  for _ in $(seq 30); do
    left=$(for f in /proc/[0-9]*/ns/net; do [ "$(readlink "$f" 2>/dev/null)" = "$netns" ] && echo "$f"; done)
    [ -z "$left" ] && break; sleep 0.1
  done
  [ -n "$netns" ] && [ -z "$left" ] && ! ip -o link show 2>/dev/null | grep -Eq ': (kiln[0-9]+|kv[0-9a-f]+|kb[0-9a-f]+)[@:]' &&
    tap_ok "$mode: the holder's namespace ($netns) is gone, no kiln bridge or veth on the host" ||
    tap_not_ok "$mode: namespace '$netns' still held by: $left $(ip -o link show | grep -E 'kiln|kv|kb')"

  k network rm safe-net other-net >/dev/null 2>&1
  rm -rf "$work" 2>/dev/null || as_mode "$mode" rm -rf "$work"
done
tap_done
