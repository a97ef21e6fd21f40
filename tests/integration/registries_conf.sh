#!/usr/bin/env bash
# registries.conf as podman reads it (issue [2.12], docs/registries.md), against
# real docker-registry instances on loopback, as the test user and as root:
# mirrors tried in order and then the primary (every attempt in --log-level
# debug), a blocked registry refused with the file named, an insecure
# registry reached over plain HTTP under a non-loopback name, short-name
# aliases, and enforcing mode failing on an ambiguous short name.
# $CONTAINERS_REGISTRIES_CONF points at the test's file; nothing leaves
# loopback (the primary "docker.io" location is a loopback registry too).
set -u
. "$(dirname "$0")/lib.sh"

registry_workdir registries-conf
PRIMARY=$REG
PRIMARY_PID=$REG_PID
mkdir -p "$work/mirror"
start_registry "$work/mirror" || { tap_not_ok "start the mirror registry"; tap_done; exit; }
MIRROR=$REG
MIRROR_PID=$REG_PID
REG_PID=$PRIMARY_PID
trap 'kill $MIRROR_PID 2>/dev/null; cleanup_workdir' EXIT
# A port nothing listens on: the first mirror, always down.
DEAD=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SOURCE_DATE_EPOCH=1700000000

# One image per registry, each saying where it was pushed.
seed=$work/seed
import_busybox root "$seed" "$work" >/dev/null || { tap_not_ok "import busybox"; tap_done; exit; }
ok=1
for who in primary mirror; do
  mkdir -p "$work/ctx-$who"
  printf 'FROM busybox\nRUN echo %s >/who\n' "$who" >"$work/ctx-$who/Containerfile"
  kiln_as root "$seed" build -q -t "who-$who" "$work/ctx-$who" >/dev/null 2>>"$work/err" || ok=0
done
kiln_as root "$seed" push -q who-primary "$PRIMARY/library/busybox:latest" 2>>"$work/err" || ok=0
kiln_as root "$seed" push -q who-primary "$PRIMARY/team/app:latest" 2>>"$work/err" || ok=0
kiln_as root "$seed" push -q who-mirror "$MIRROR/library/busybox:latest" 2>>"$work/err" || ok=0
kiln_as root "$seed" push -q who-mirror "$MIRROR/only/mirror:latest" 2>>"$work/err" || ok=0
if [ $ok = 0 ]; then tap_not_ok "push the seed images"; diag <"$work/err"; tap_done; exit; fi
chmod -R a+rX "$work"

# conf NAME TEXT: writes $work/NAME.conf (readable by the test user).
conf() { printf '%s\n' "$2" >"$work/$1.conf"; chmod 644 "$work/$1.conf"; }
conf mirrors "[[registry]]
prefix = \"docker.io\"
location = \"$PRIMARY\"
[[registry.mirror]]
location = \"$DEAD\"
[[registry.mirror]]
location = \"$MIRROR\""
conf primary-only "[[registry]]
prefix = \"docker.io\"
location = \"$PRIMARY\"
[[registry.mirror]]
location = \"$DEAD\""
conf blocked "[[registry]]
prefix = \"$PRIMARY/team\"
blocked = true"
conf aliases "[aliases]
\"myapp\" = \"$PRIMARY/team/app\""
conf enforcing "unqualified-search-registries = [\"$PRIMARY\", \"$MIRROR\"]
short-name-mode = \"enforcing\""
conf permissive "unqualified-search-registries = [\"$PRIMARY\", \"$MIRROR\"]
short-name-mode = \"permissive\""
conf bad "[[registry]]
location = \"https://r.example\""

# kc MODE STORE CONF ARGS...: kiln with CONTAINERS_REGISTRIES_CONF=$work/CONF.conf
kc() {
  local mode=$1 store=$2 c=$3; shift 3
  as_mode "$mode" env CONTAINERS_REGISTRIES_CONF="$work/$c.conf" KILN_ROOT="$store" \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$KILN_BIN" "$@"
}

for mode in $(test_modes); do
  w=$(make_workdir "$mode")

  # FROM busybox through the mirrors: the dead one, then the live one.
  as_mode "$mode" mkdir -p "$w/app"
  as_mode "$mode" sh -c "printf 'FROM busybox\nRUN cat /who\n' >'$w/app/Containerfile'"
  if kc "$mode" "$w/s1" mirrors --log-level debug build -t app "$w/app" >"$w/out" 2>&1 &&
     [ "$(kc "$mode" "$w/s1" mirrors run --rm --network none app cat /who 2>/dev/null)" = mirror ] &&
     grep -q "trying $DEAD/library/busybox:latest (mirror)" "$w/out" &&
     grep -q "trying $MIRROR/library/busybox:latest (mirror)" "$w/out" &&
     ! grep -q "trying $PRIMARY/" "$w/out" &&
     kc "$mode" "$w/s1" mirrors images --format '{{.Repository}}:{{.Tag}}' | grep -qx 'docker.io/library/busybox:latest'; then
    tap_ok "$mode: FROM busybox comes from the second mirror when the first is down, named docker.io/library/busybox, each attempt in --log-level debug"
  else
    tap_not_ok "$mode: FROM busybox through the mirrors"; diag <"$w/out"
  fi

  # Every mirror down: the primary location.
  if kc "$mode" "$w/s2" primary-only pull -q busybox >"$w/out" 2>&1 &&
     [ "$(kc "$mode" "$w/s2" primary-only run --rm --network none busybox cat /who 2>/dev/null)" = primary ]; then
    tap_ok "$mode: with every mirror down the pull comes from the primary location"
  else
    tap_not_ok "$mode: the primary after the mirrors"; diag <"$w/out"
  fi

  # Blocked: refused, naming the registry and the file; push too.
  if kc "$mode" "$w/s3" blocked pull "$PRIMARY/team/app" >"$w/out" 2>&1; then
    tap_not_ok "$mode: a blocked registry is refused"; diag <"$w/out"
  elif grep -q "registry $PRIMARY is blocked in $work/blocked.conf" "$w/out" &&
       ! kc "$mode" "$w/s1" blocked push app "$PRIMARY/team/x" >"$w/out2" 2>&1 &&
       grep -q "refusing to push" "$w/out2"; then
    tap_ok "$mode: a blocked prefix refuses pull and push, naming the registry and $work/blocked.conf"
  else
    tap_not_ok "$mode: the blocked error names the registry and file"; diag <"$w/out"; diag <"$w/out2"
  fi

  # A short-name alias.
  if kc "$mode" "$w/s4" aliases pull myapp >"$w/out" 2>&1 &&
     grep -qF "Resolved \"myapp\" as an alias ($work/aliases.conf)" "$w/out" &&
     kc "$mode" "$w/s4" aliases images --format '{{.Repository}}' | grep -qx "$PRIMARY/team/app"; then
    tap_ok "$mode: a short-name alias resolves and the image gets the full name"
  else
    tap_not_ok "$mode: short-name alias"; diag <"$w/out"
  fi

  # Enforcing: an ambiguous short name without a terminal fails naming the candidates.
  kc "$mode" "$w/s5" enforcing pull only/mirror </dev/null >"$w/out" 2>&1
  rc=$?
  if [ $rc = 2 ] && grep -q "ambiguous" "$w/out" && grep -q "$PRIMARY/only/mirror:latest, $MIRROR/only/mirror:latest" "$w/out"; then
    tap_ok "$mode: enforcing mode fails on an ambiguous short name with exit 2, naming both candidates"
  else
    tap_not_ok "$mode: enforcing ambiguity (rc=$rc)"; diag <"$w/out"
  fi
  # Permissive: each search registry in turn.
  if kc "$mode" "$w/s5" permissive pull only/mirror >"$w/out" 2>&1 &&
     grep -q "Trying to pull $PRIMARY/only/mirror:latest" "$w/out" &&
     kc "$mode" "$w/s5" permissive images --format '{{.Repository}}' | grep -qx "$MIRROR/only/mirror"; then
    tap_ok "$mode: permissive mode tries each search registry in order"
  else
    tap_not_ok "$mode: permissive search"; diag <"$w/out"
  fi

  # A bad file: exit 2, file and line.
  kc "$mode" "$w/s6" bad pull busybox >"$w/out" 2>&1
  rc=$?
  check_refused "$mode: an invalid registries.conf is exit 2 naming file:line and the value" $rc \
    "$work/bad.conf:2: [[registry]] #1: location \"https://r.example\" must not have a scheme" "$w/out"
  rm -rf "$w"
done

# insecure = true: plain HTTP to a registry under a non-loopback name (an
# /etc/hosts entry to 127.0.0.1, made for this test and removed after).
if [ "$(id -u)" -ne 0 ]; then
  tap_skip "insecure registry under a test hostname: needs root to add an /etc/hosts entry"
else
  host="kiln-insecure-$$.test"
  port=${MIRROR##*:}
  cp /etc/hosts "$work/hosts.orig"
  trap 'cp "$work/hosts.orig" /etc/hosts; kill $MIRROR_PID 2>/dev/null; cleanup_workdir' EXIT
  echo "127.0.0.1 $host" >>/etc/hosts
  conf insecure "[[registry]]
location = \"$host:$port\"
insecure = true"
  conf secure "[[registry]]
location = \"$host:$port/other\""
  for mode in $(test_modes); do
    w=$(make_workdir "$mode")
    if kc "$mode" "$w/s" secure pull "$host:$port/only/mirror" >"$w/out" 2>&1; then
      tap_not_ok "$mode: plain HTTP to $host is refused without insecure = true"; diag <"$w/out"
    elif kc "$mode" "$w/s" insecure pull "$host:$port/only/mirror" >"$w/out2" 2>&1; then
      tap_ok "$mode: plain HTTP to a non-loopback name is refused, and allowed by insecure = true"
    else
      tap_not_ok "$mode: insecure = true allows plain HTTP"; diag <"$w/out2"
    fi
    rm -rf "$w"
  done
  cp "$work/hosts.orig" /etc/hosts
fi
tap_done
