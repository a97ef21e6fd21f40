#!/usr/bin/env bash
# Container networks (docs/network.md): what a network costs a container and
# how fast names and connections are on it, in one run on one store.
#
#   bench/network.sh [KILN_BIN] [N] [PEERS]
#
# - `run --rm IMG true` with the default network (slirp4netns/pasta, or
#   loopback only), with --network none, and with --network NET (a warm
#   holder: one container stays on NET), interleaved, medians of N;
# - a name lookup of another container from inside one (UDP, 2000 queries,
#   median and p99), TCP connects to a peer's server (500, median), ping RTT;
# - PEERS containers (default 50) on one network: every pair resolvable
#   (each container asks the responder for every other name).
# Runs as the invoking user (as root, `runuser -u kiln-test -- bench/network.sh
# /abs/path/kiln` gives the rootless figure). No packet leaves the holder's
# namespace; lookups of the containers' names are answered by kiln's
# responder, nothing is forwarded. Needs python3 and nsenter (util-linux).
# podman's figures on this machine are in /work/shared/docs/PODMAN-HERE.md
# (`run --rm --network NET` 385 ms as root, 400 ms rootless; its rootless
# networks need /dev/net/tun, 0600 here).
set -eu
KILN=$(readlink -f "${1:-${KILN_BIN:-$(dirname "$0")/../build/src/cli/kiln}}")
N=${2:-20}
PEERS=${3:-50}
here=$(cd "$(dirname "$0")" && pwd)

. "$here/lib.sh"  # bench_store, ms, median_ms
bench_store net
"$KILN" network create benchnet >/dev/null
gw=$("$KILN" network inspect -f '{{range .subnets}}{{.gateway}}{{end}}' benchnet)
"$KILN" run -d --name anchor --network benchnet busybox sleep 3600 >/dev/null
"$KILN" run -d --name peer --network benchnet busybox sh -c 'echo ok >/tmp/i; httpd -f -p 8080 -h /tmp' >/dev/null
"$KILN" run --rm --network none busybox true 2>/dev/null  # warm
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

: >"$work/default"; : >"$work/none"; : >"$work/net"
for i in $(seq 1 "$N"); do
  ms "$KILN" run --rm busybox true >>"$work/default"
  ms "$KILN" run --rm --network none busybox true >>"$work/none"
  ms "$KILN" run --rm --network benchnet busybox true >>"$work/net"
done
median() { median_ms "$1" 1; }
d=$(median "$work/default"); z=$(median "$work/none"); n=$(median "$work/net")
echo "load average before: $load_before"
echo "run --rm IMG true (default network)       median of $N: $d ms"
echo "run --rm --network none IMG true          median of $N: $z ms"
echo "run --rm --network benchnet IMG true      median of $N: $n ms  ($(awk -v a="$n" -v b="$d" 'BEGIN{printf "%.2f", a/b}')x default, $(awk -v a="$n" -v b="$z" 'BEGIN{printf "%.2f", a/b}')x none)"

pid_of() { "$KILN" inspect --type container "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["Pid"])'; }
holder=$(cat "$KILN_ROOT"/run/network-*/holder.pid)
in_ctr() {  # CONTAINER CMD...: a host command in the container's network namespace
  local p; p=$(pid_of "$1"); shift
  nsenter --preserve-credentials --user="/proc/$holder/ns/user" --net="/proc/$p/ns/net" "$@"
}
peer_ip=$("$KILN" inspect --type container peer | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["Networks"]["benchnet"]["IPAddress"])')
in_ctr anchor python3 - "$gw" "$peer_ip" <<'PY'
import socket, struct, sys, time
gw, peer = sys.argv[1], sys.argv[2]
def query(name, ident):
    q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        q += bytes([len(l)]) + l.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((gw, 53))
times = []
for i in range(2000):
    t0 = time.perf_counter()
    s.send(query("peer", i))
    r = s.recv(512)
    times.append(time.perf_counter() - t0)
    assert struct.unpack("!H", r[6:8])[0] == 1, r
times.sort()
print("name lookup of a peer (UDP, from inside)  median of 2000: %.3f ms, p99 %.3f ms" %
      (times[1000] * 1e3, times[1979] * 1e3))
ct = []
for i in range(500):
    t0 = time.perf_counter()
    c = socket.create_connection((peer, 8080), timeout=2)
    ct.append(time.perf_counter() - t0)
    c.close()
ct.sort()
print("TCP connect to a peer                     median of 500: %.3f ms" % (ct[250] * 1e3))
PY
rtt=$("$KILN" exec anchor ping -c 10 -i 0.2 -q "$peer_ip" | awk -F/ '/round-trip|rtt/ {print $4}')
echo "ping a peer (busybox ping)                avg of 10: $rtt ms"

# PEERS containers: every pair resolvable.
t0=$(date +%s%N)
for i in $(seq 1 "$PEERS"); do
  "$KILN" run -d --name "p$i" --network benchnet busybox sleep 3600 >/dev/null
done
t1=$(date +%s%N)
echo "$PEERS x run -d --network benchnet         total: $(((t1 - t0) / 1000000)) ms"
bad=0
for i in $(seq 1 "$PEERS"); do
  out=$(in_ctr "p$i" python3 - "$gw" "$PEERS" <<'PY'
import socket, struct, sys
gw, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((gw, 53))
missing = 0
for j in range(1, n + 1):
    name = "p%d" % j
    q = struct.pack("!HHHHHH", j, 0x0100, 1, 0, 0, 0) + bytes([len(name)]) + name.encode() + b"\0" + struct.pack("!HH", 1, 1)
    s.send(q)
    r = s.recv(512)
    if struct.unpack("!H", r[6:8])[0] != 1:
        missing += 1
print(missing)
PY
)
  bad=$((bad + out))
done
echo "$PEERS containers, every pair resolvable: $((PEERS * PEERS - bad))/$((PEERS * PEERS)) answered"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
