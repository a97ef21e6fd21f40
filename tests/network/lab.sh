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
if [ "$(id -u)" -eq 0 ]; then
  up_addr=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
  python3 "$(dirname "$0")/upstream_dns.py" "$up_addr" 53 "$dns_dir/queries" >"$dns_dir/up.out" 2>&1 &
  UP_PID=$!
  for _ in $(seq 50); do grep -q ready "$dns_dir/up.out" 2>/dev/null && break; sleep 0.1; done
  echo "nameserver $up_addr" >"$dns_dir/resolv.conf"
else
  echo "nameserver 127.0.0.1" >"$dns_dir/resolv.conf"
fi
chmod 644 "$dns_dir/resolv.conf"
export KILN_RESOLV_CONF=$dns_dir/resolv.conf
trap '[ -n "$UP_PID" ] && kill $UP_PID 2>/dev/null; rm -rf "$dns_dir"' EXIT

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
    out=$(k run -d --name c --network other-net busybox sleep 600 2>&1)
  if [ $? -ne 0 ]; then
    tap_not_ok "$mode: run -d --network: $out"; cat "$store"/run/network-*/holder.log 2>/dev/null | diag
    k rm -f a b c >/dev/null 2>&1; rm -rf "$work"; continue
  fi
  ipa=$(ip_of a safe-net); ipb=$(ip_of b safe-net); ipc=$(ip_of c other-net)
  case "$ipa" in "${sub%.0/24}".*) tap_ok "$mode: A has $ipa from safe-net's $sub (inspect NetworkSettings)";;
    *) tap_not_ok "$mode: A's address: '$ipa' (subnet $sub)";; esac
  [ "$ipb" = "${sub%.0/24}.77" ] && tap_ok "$mode: --ip gives B $ipb" || tap_not_ok "$mode: B's address: '$ipb'"
  [ -n "$ipc" ] && [ "${ipc%.*}" != "${ipa%.*}" ] && tap_ok "$mode: C on other-net has $ipc" || tap_not_ok "$mode: C: '$ipc'"

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
    tap_not_ok "$mode: C (other-net) reached A at $ipa"
  else
    tap_ok "$mode: C on other-net cannot reach A"
  fi
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
  got=$(resolved c a); [ -z "$got" ] && tap_ok "$mode: C (other-net) cannot resolve A" || tap_not_ok "$mode: C resolved a to $got"
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
  for c in a b c; do pids="$pids $(k inspect --type container $c 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["MonitorPid"])' 2>/dev/null)"; done
  [ -n "$hp" ] && pids="$pids $hp $(awk '{print $4}' /proc/$hp/stat 2>/dev/null)"
  for p in $pids; do [ "$p" -gt 1 ] 2>/dev/null && kill -9 "$p" 2>/dev/null; done
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

  k network rm safe-net other-net >/dev/null 2>&1
  rm -rf "$work" 2>/dev/null || as_mode "$mode" rm -rf "$work"
done
tap_done
