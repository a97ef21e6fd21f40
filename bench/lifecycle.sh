#!/usr/bin/env bash
# What a container's lifecycle costs (issue [2.7], docs/run.md): a benchmark,
# not a timed test.
#
#   bench/lifecycle.sh [KILN_BIN] [N_CONTAINERS] [SECONDS]
#
# 1. Health checks: N (default 20) detached containers with `--health-cmd
#    true --health-interval 1s`, then N without a check. For SECONDS (default
#    30) it reads the CPU time of their monitors from /proc/PID/stat (utime +
#    stime + cutime + cstime: a check is a child of its monitor, reaped by
#    it); the checks' cost is the difference, per container, in % of one CPU.
# 2. Restart: a `--restart always` container whose command exits at once.
#    From the events (`kiln events --format json`, the monitor's clock): the
#    gap from each `died` to the next `start`, minus the back-off of that round
#    (100 ms, doubling); the target is under 100 ms.
# 3. The same restart beside podman, when it is installed and the script runs
#    as root (podman 4.3 with the settings of PODMAN-HERE.md, events from its
#    file logger). podman runs health checks only from systemd timers, so it
#    has no figure for 1.
#
# Runs as the invoking user (rootless when not root). Prints the figures and
# the load average (the machine is shared; CPU time is what counts in 1).
set -eu
KILN=$(realpath "${1:-${KILN_BIN:-$(dirname "$0")/../build/src/cli/kiln}}")
N=${2:-20}
SECS=${3:-30}
HERE=$(cd "$(dirname "$0")/.." && pwd)

work=$(mktemp -d /tmp/kiln-bench-life.XXXXXX)
export KILN_ROOT="$work/store"
cleanup() {
  for c in $("$KILN" ps -a -q 2>/dev/null); do "$KILN" rm -f "$c" >/dev/null 2>&1 || true; done
  if [ -n "${PODMAN_DONE:-}" ]; then podman_cmd rm -f -a >/dev/null 2>&1 || true; fi
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
"$HERE/scripts/make-busybox-rootfs.sh" "$work/busybox.tar" >/dev/null
"$KILN" import "$work/busybox.tar" busybox >/dev/null
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

ticks() {  # ticks PID...: utime+stime+cutime+cstime of the PIDs, in clock ticks
  local sum=0 p f
  for p in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    set -- $f
    # fields after the comm: state(1) ... utime(12) stime(13) cutime(14) cstime(15)
    sum=$((sum + ${12} + ${13} + ${14} + ${15}))
  done
  echo $sum
}
monitors() {  # monitors PREFIX: the monitor PIDs of the containers named PREFIX*
  local c
  for c in $("$KILN" ps -q --filter "name=$1"); do "$KILN" inspect --format '{{.State.MonitorPid}}' "$c"; done
}
hz=$(getconf CLK_TCK)

# 1. health checks
for i in $(seq 1 "$N"); do
  "$KILN" run -d --name "hc$i" --network none --health-cmd true --health-interval 1s busybox sleep 3600 >/dev/null
  "$KILN" run -d --name "nohc$i" --network none busybox sleep 3600 >/dev/null
done
sleep 2  # the first checks and the start-up are out of the window
hc_pids=$(monitors hc)
no_pids=$(monitors nohc)
a0=$(ticks $hc_pids); b0=$(ticks $no_pids)
sleep "$SECS"
a1=$(ticks $hc_pids); b1=$(ticks $no_pids)
healthy=$("$KILN" ps --filter name=hc --format '{{.Status}}' | grep -c '(healthy)' || true)
checks=$("$KILN" inspect --format '{{len .State.Health.Log}}' hc1)
awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v hz="$hz" -v s="$SECS" -v n="$N" -v ok="$healthy" 'BEGIN {
  pa = a / hz / s / n * 100; pb = b / hz / s / n * 100
  printf "health checks: %d containers, check every 1 s, %d s: monitors with checks %.3f%% CPU each, without %.3f%% each\n", n, s, pa, pb
  printf "  => a check every 1 s adds %.3f%% of one CPU per container (target < 1%%); %d of %d healthy\n", pa - pb, ok, n
}'
for c in $("$KILN" ps -a -q); do "$KILN" rm -f "$c" >/dev/null 2>&1 & done
wait

# 2. restart latency (kiln)
gaps() {  # gaps: events JSON on stdin -> "died->start gap minus back-off" per round, in ms
  python3 -c '
import datetime, json, sys
def t(j):  # kiln and podman 4.3: RFC 3339 with ns ("Z" or "+00:00"); newer podman: timeNano
    if "timeNano" in j:
        return j["timeNano"] / 1e9
    s = j["Time"]
    off = 0
    if s.endswith("Z"):
        s = s[:-1]
    elif len(s) > 6 and s[-6] in "+-" and s[-3] == ":":
        off = (int(s[-6:-3]) * 60 + (1 if s[-6] == "+" else -1) * int(s[-2:])) * 60
        s = s[:-6]
    base, _, frac = s.partition(".")
    return datetime.datetime.strptime(base[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp() + float("0." + (frac or "0")) - off
backoff = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
died = None; out = []; i = 0
for line in sys.stdin:
    j = json.loads(line)
    st = j.get("Status", j.get("status"))
    if st == "died":
        died = t(j)
    elif st == "start" and died is not None:
        b = backoff * (2 ** i) if backoff else 0
        out.append((t(j) - died - b) * 1000); died = None; i += 1
print(" ".join("%.1f" % g for g in out))' "$@"
}
"$KILN" run -d --name rs --network none --restart always busybox sh -c 'exit 1' >/dev/null
sleep 7  # back-off 0.1+0.2+0.4+0.8+1.6+3.2 s: six rounds
"$KILN" rm -f rs >/dev/null
g=$("$KILN" events --stream=false --filter container=rs --format json | gaps 0.1)
echo "kiln restart (--restart always, exit at once): died -> start minus back-off, ms per round: $g"
echo "$g" | awk '{ m = 0; for (i = 1; i <= NF; i++) if ($i > m) m = $i; printf "  => worst %.1f ms (target < 100 ms)\n", m }'

# 3. podman beside it (root only: rootless podman needs a user set-up; see PODMAN-HERE.md)
if command -v podman >/dev/null && [ "$(id -u)" -eq 0 ]; then
  mkdir -p "$work/podman"
  cat >"$work/podman/containers.conf" <<'EOF'
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_backend = "netavark"
EOF
  podman_cmd() {
    CONTAINERS_CONF="$work/podman/containers.conf" podman --root "$work/podman/root" --runroot "$work/podman/run" \
      --tmpdir "$work/podman/tmp" --events-backend file "$@"
  }
  PODMAN_DONE=1
  if podman_cmd import "$work/busybox.tar" localhost/busybox >/dev/null 2>"$work/podman/err"; then
    pn=kiln-bench-rs-$$
    podman_cmd run -d --name "$pn" --network none --restart always localhost/busybox sh -c 'exit 1' >/dev/null
    sleep 7
    podman_cmd rm -f "$pn" >/dev/null 2>&1 || true
    g=$(podman_cmd events --stream=false --filter container="$pn" --format json | gaps 0)
    echo "podman 4.3 restart (same container): died -> start, ms per round (podman has no back-off): $g"
  else
    echo "podman: could not import the image ($(head -1 "$work/podman/err")); skipped"
  fi
else
  echo "podman: skipped (not installed, or not root)"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
