#!/usr/bin/env bash
# kiln compose (docs/compose.md): what `compose up -d` costs over starting the
# same containers by hand, and how long `down` takes, in one run on one store.
#
#   bench/compose.sh [KILN_BIN] [N]
#
# The project: db (busybox, a health check every 0.2 s that passes once a
# file exists, made 0.5 s after start), web and worker depending on db with
# condition service_healthy, all on <project>_default. Compared, interleaved,
# N times (medians):
#   A: `kiln compose up -d`
#   B: the same by hand: `network create`, `run -d` of db, `wait
#      --condition=healthy` (else a loop on inspect), `run -d` of web and worker
#      (the same images, labels left out)
# and `kiln compose down` of A (every container stopped and removed, the
# network removed). Target ([2.9]): A within 1.5x of B, down under 1 s.
set -eu
KILN=$(readlink -f "${1:-${KILN_BIN:-$(dirname "$0")/../build/src/cli/kiln}}")
N=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)

. "$here/lib.sh"  # bench_store, ms, median_ms
bench_store compose
mkdir -p "$work/proj"
cat >"$work/proj/compose.yaml" <<'YML'
name: bench
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 0.5; touch /tmp/ready; exec sleep 3600"]
    healthcheck: {test: ["CMD-SHELL", "test -f /tmp/ready"], interval: 200ms, start_interval: 200ms, retries: 50}
  web:
    image: busybox
    command: ["sleep", "3600"]
    depends_on: {db: {condition: service_healthy}}
  worker:
    image: busybox
    command: ["sleep", "3600"]
    depends_on: {db: {condition: service_healthy}}
YML
"$KILN" run --rm --network none busybox true 2>/dev/null  # warm
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

now() { date +%s%N; }
wait_healthy() {
  if "$KILN" wait --condition=healthy "$1" >/dev/null 2>&1; then return; fi
  until [ "$("$KILN" inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null)" = healthy ]; do sleep 0.05; done
}
by_hand() {
  "$KILN" network create hand_default >/dev/null
  "$KILN" run -d --name hand-db-1 --network hand_default:alias=db --health-cmd 'test -f /tmp/ready' \
    --health-interval 200ms --health-start-interval 200ms --health-retries 50 \
    busybox sh -c 'sleep 0.5; touch /tmp/ready; exec sleep 3600' >/dev/null
  wait_healthy hand-db-1
  "$KILN" run -d --name hand-web-1 --network hand_default:alias=web busybox sleep 3600 >/dev/null
  "$KILN" run -d --name hand-worker-1 --network hand_default:alias=worker busybox sleep 3600 >/dev/null
}
hand_down() {
  "$KILN" rm -f -t 0 hand-db-1 hand-web-1 hand-worker-1 >/dev/null 2>&1 || "$KILN" rm -f hand-db-1 hand-web-1 hand-worker-1 >/dev/null
  "$KILN" network rm hand_default >/dev/null
}
: >"$work/a"; : >"$work/b"; : >"$work/down"
for i in $(seq 1 "$N"); do
  t0=$(now); (cd "$work/proj" && "$KILN" compose up -d 2>/dev/null); t1=$(now)
  echo $(((t1 - t0) / 1000)) >>"$work/a"
  [ "$("$KILN" ps --format '{{.Names}}' | grep -c '^bench-')" = 3 ] || { echo "compose up -d did not start 3 containers" >&2; exit 1; }
  t0=$(now); (cd "$work/proj" && "$KILN" compose down 2>/dev/null); t1=$(now)
  echo $(((t1 - t0) / 1000)) >>"$work/down"
  [ "$("$KILN" ps -a --format '{{.Names}}' | grep -c '^bench-')" = 0 ] || { echo "compose down left containers" >&2; exit 1; }
  t0=$(now); by_hand; t1=$(now)
  echo $(((t1 - t0) / 1000)) >>"$work/b"
  hand_down
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.0f\n", m / 1000}'; }
a=$(median "$work/a"); b=$(median "$work/b"); d=$(median "$work/down")
echo "load average before: $load_before (after: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "compose up -d (3 services, db healthy first)   median of $N: $a ms"
echo "network create + 3 run -d + health wait        median of $N: $b ms"
echo "compose down (3 containers + network)          median of $N: $d ms"
awk -v a="$a" -v b="$b" -v d="$d" 'BEGIN {
  r = a / b
  printf "up -d / by hand: %.2fx (target <= 1.5x): %s\n", r, r <= 1.5 ? "ok" : "OVER"
  printf "down: %d ms (target < 1000 ms): %s\n", d, d < 1000 ? "ok" : "OVER" }'
