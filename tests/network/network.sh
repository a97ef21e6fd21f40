#!/bin/bash
# kiln network create|ls|inspect|rm|exists|prune (docs/network.md), as the
# test user and as root (TAP). Each mode uses its own store, so the networks
# (and, for the data path, the namespace holding their bridges) are private
# to this run.
. "$(dirname "$0")/../integration/lib.sh"

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store=$work/store
  k() { XDG_RUNTIME_DIR= kiln_as "$mode" "$store" "$@"; }

  # The default network exists without being created, as podman's.
  out=$(k network ls 2>&1)
  if [ "$(printf '%s\n' "$out" | head -1 | tr -s ' ')" = "NETWORK ID NAME DRIVER" ] &&
     printf '%s\n' "$out" | grep -Eq '^2f259bab93aa +podman +bridge$'; then
    tap_ok "$mode: network ls shows podman's header and the default network"
  else
    tap_not_ok "$mode: network ls: $out"
  fi
  sub=$(k network inspect -f '{{range .subnets}}{{.subnet}} {{.gateway}}{{end}} dns={{.dns_enabled}}' podman 2>&1)
  [ "$sub" = "10.88.0.0/16 10.88.0.1 dns=false" ] && tap_ok "$mode: default network 10.88.0.0/16, DNS off" ||
    tap_not_ok "$mode: default network inspect: $sub"

  # create: the first free /24 from 10.89.0.0, DNS on, labels kept.
  out=$(k network create --label app=lab --label tier=db safe-net 2>&1)
  [ "$out" = safe-net ] && tap_ok "$mode: network create prints the name" || tap_not_ok "$mode: create: $out"
  j=$(k network inspect safe-net 2>&1)
  if python3 - "$j" <<'PY'
import json, sys, ipaddress
a = json.loads(sys.argv[1])
assert len(a) == 1, a
n = a[0]
assert list(n.keys()) == ["name", "id", "driver", "network_interface", "created", "subnets", "ipv6_enabled",
                          "internal", "dns_enabled", "labels", "ipam_options"], list(n.keys())
assert n["name"] == "safe-net" and len(n["id"]) == 64 and n["driver"] == "bridge", n
net = ipaddress.ip_network(n["subnets"][0]["subnet"])
assert net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.89.0.0/16")) or \
       net.subnet_of(ipaddress.ip_network("10.0.0.0/8")), n
assert n["subnets"][0]["gateway"] == str(net.network_address + 1), n
assert n["dns_enabled"] is True and n["internal"] is False, n
assert n["labels"] == {"app": "lab", "tier": "db"}, n
assert n["ipam_options"] == {"driver": "host-local"}, n
PY
  then tap_ok "$mode: network inspect has podman 4.3's fields, a /24 from 10.89.0.0 and .1 as gateway"
  else tap_not_ok "$mode: network inspect: $j"; fi

  # The next network takes another subnet; an explicit one and its gateway are kept.
  k network create --internal --disable-dns -o isolate=true backend >/dev/null 2>&1
  s1=$(k network inspect -f '{{range .subnets}}{{.subnet}}{{end}}' safe-net 2>&1)
  s2=$(k network inspect -f '{{range .subnets}}{{.subnet}}{{end}}' backend 2>&1)
  flags=$(k network inspect -f '{{.internal}} {{.dns_enabled}} {{.options.isolate}}' backend 2>&1)
  if [ -n "$s1" ] && [ "$s1" != "$s2" ] && [ "$flags" = "true false true" ]; then
    tap_ok "$mode: a second network takes a different subnet ($s1, $s2); --internal, --disable-dns, -o kept"
  else
    tap_not_ok "$mode: second network: $s1 / $s2 / $flags"
  fi
  out=$(k network create --subnet 10.123.0.0/16 --gateway 10.123.255.254 custom 2>&1)
  gw=$(k network inspect -f '{{range .subnets}}{{.subnet}} {{.gateway}}{{end}}' custom 2>&1)
  [ "$gw" = "10.123.0.0/16 10.123.255.254" ] && tap_ok "$mode: --subnet and --gateway are kept" ||
    tap_not_ok "$mode: custom subnet: $out / $gw"

  # Errors: one line, exit 2 for bad input, nothing written.
  check_err() {  # the message on stderr (inspect also prints "[]", as podman)
    local want_rc=$1 want=$2; shift 2
    local out rc
    out=$(k "$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" = "$want_rc" ] && printf '%s' "$out" | grep -qF -- "$want" && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ]; then
      tap_ok "$mode: $* -> exit $rc: $want"
    else
      tap_not_ok "$mode: $* -> exit $rc: $out"
    fi
  }
  check_err 2 "network name safe-net already used" network create safe-net
  check_err 2 "overlaps network custom" network create --subnet 10.123.4.0/24 clash
  check_err 2 'host bits are set (did you mean 10.99.0.0/24?)' network create --subnet 10.99.0.7/24 bad1
  check_err 2 "gateway 10.98.1.1 is not a host address of subnet 10.98.0.0/24" network create --subnet 10.98.0.0/24 --gateway 10.98.1.1 bad2
  check_err 2 'invalid network name "-x"' network create -- -x
  check_err 2 "default network podman cannot be removed" network rm podman
  check_err 125 "unable to find network with name or ID nosuch: network not found" network inspect nosuch
  out=$(k network create --ignore safe-net 2>&1)
  [ "$out" = safe-net ] && tap_ok "$mode: create --ignore of an existing network succeeds" || tap_not_ok "$mode: --ignore: $out"
  n=$(k network ls -q 2>&1 | tr '\n' ' ')
  [ "$n" = "backend custom podman safe-net " ] && tap_ok "$mode: failed creates wrote nothing; ls -q sorted by name" ||
    tap_not_ok "$mode: ls -q: $n"

  # ls --format and --filter; inspect by ID prefix; exists.
  out=$(k network ls --format '{{.Name}}:{{.Driver}}:{{.Internal}}' --filter label=app=lab 2>&1)
  [ "$out" = "safe-net:bridge:false" ] && tap_ok "$mode: ls --format with --filter label=" || tap_not_ok "$mode: ls --format: $out"
  id=$(k network inspect -f '{{.id}}' safe-net 2>&1)
  byid=$(k network inspect -f '{{.name}}' "${id:0:12}" 2>&1)
  [ "$byid" = safe-net ] && tap_ok "$mode: inspect by ID prefix" || tap_not_ok "$mode: inspect by id: $byid"
  k network exists safe-net; rc1=$?
  k network exists nosuch; rc2=$?
  [ "$rc1" = 0 ] && [ "$rc2" = 1 ] && tap_ok "$mode: network exists: 0 and 1" || tap_not_ok "$mode: exists: $rc1 $rc2"

  # GC roots: each user network is one, and `kiln prune` keeps the records.
  if [ -f "$store/roots/networks/safe-net.json" ] && k prune -a -f >/dev/null 2>&1 && k network exists safe-net; then
    tap_ok "$mode: the record is a store GC root and survives prune"
  else
    tap_not_ok "$mode: GC root: $(ls "$store/roots" 2>&1)"
  fi

  # rm and prune.
  out=$(k network rm backend 2>&1)
  [ "$out" = backend ] && ! k network exists backend && [ ! -e "$store/roots/networks/backend.json" ] &&
    tap_ok "$mode: network rm removes the record and its root" || tap_not_ok "$mode: rm: $out"
  out=$(k network prune -f 2>&1 | tr '\n' ' ')
  n=$(k network ls -q 2>&1 | tr '\n' ' ')
  [ "$out" = "custom safe-net " ] && [ "$n" = "podman " ] && tap_ok "$mode: network prune removes unused networks, keeps the default" ||
    tap_not_ok "$mode: prune: $out / $n"

  rm -rf "$work" 2>/dev/null || as_mode "$mode" rm -rf "$work"
done
tap_done
