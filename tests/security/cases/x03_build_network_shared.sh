#!/usr/bin/env bash
# Issue [2.6] item 4: the RUN steps of a build share one network namespace
# (one slirp4netns/pasta per build, docs/performance.md). What a step could
# leave for the next must not survive it: a listener started by a step is
# gone when the step ends (its pid namespace dies); --network=none steps
# still get a namespace of their own without the build's interface; the
# host's 127.0.0.1 stays unreachable (slirp4netns --disable-host-loopback);
# a step cannot change the shared routes (no CAP_NET_ADMIN).
# Skips where no network helper is usable (the fail-closed case is x01).
# Usage: bash FILE MODE WORKDIR.
set -u
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
store=$STORE
need_busybox skip
fail() { not_contained "$*"; }
mkdir -p "$WORK/www" "$WORK/ctx"
[ "$MODE" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$WORK/ctx"
echo host-secret >"$WORK/www/secret"
serve_dir "$WORK/www" secret
cat >"$WORK/ctx/Containerfile" <<EOC
FROM busybox
RUN ls /sys/class/net > /ifs1
RUN ls /sys/class/net > /ifs2
RUN nc -l -p 4444 -e true & sleep 0.3; nc -w1 127.0.0.1 4444 </dev/null && echo listening > /listener
RUN if nc -w1 127.0.0.1 4444 </dev/null; then echo left > /leak; fi
RUN ip route del default 2>/dev/null; ip link set lo down 2>/dev/null; ip link set tap0 down 2>/dev/null; true
RUN ip route > /routes-after; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags > /lo-after
RUN --network=none ls /sys/class/net > /ifs-none
RUN wget -q -T 3 -O- http://10.0.2.2:$port/secret > /got 2>/dev/null; wget -q -T 3 -O- http://127.0.0.1:$port/secret >> /got 2>/dev/null; true
EOC
kiln_as "$MODE" "$store" build --no-cache -t shared "$WORK/ctx" >"$WORK/out" 2>&1 || fail "build failed: $(tail -3 "$WORK/out")"
grep -q 'no usable network helper' "$WORK/out" && { echo "skip: no usable slirp4netns/pasta for this user" >&2; exit 77; }
r() { kiln_as "$MODE" "$store" run --rm --network none shared cat "$@" 2>/dev/null; }
ifs1=$(r /ifs1 | tr '\n' ' ')
[ "$(r /ifs2 | tr '\n' ' ')" = "$ifs1" ] || fail "two steps saw different interfaces: $ifs1 / $(r /ifs2)"
case "$ifs1" in *lo*) ;; *) fail "no loopback in a step: $ifs1" ;; esac
[ "$(echo "$ifs1" | wc -w)" -ge 2 ] || fail "a step has no network interface besides lo: $ifs1"
[ "$(r /listener)" = listening ] || fail "the listener test did not run"
r /leak >/dev/null && fail "a listener of one step was reachable from the next"
grep -q default <(r /routes-after) || fail "a step removed the shared network's default route: $(r /routes-after)"
[ "$(r /ifs-none | tr -d '\n ')" = lo ] || fail "a --network=none step saw the build's network: $(r /ifs-none)"
grep -q host-secret <(r /got) && fail "a step read a host-only service on 127.0.0.1"
exit 0
