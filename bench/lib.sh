# Shared helpers of the bench scripts. Source it.

# ms CMD...: the wall time of one run of CMD, in microseconds (output dropped)
ms() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}

# median_ms FILE [DECIMALS]: the median of the microsecond times in FILE, in ms
median_ms() {
  sort -n "$1" | awk -v d="${2:-2}" '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.*f\n", d, m / 1000}'
}

# bench_store NAME: a fresh $work (/tmp/kiln-bench-NAME.XXXXXX) holding the
# store (KILN_ROOT) with the offline busybox image imported as "busybox";
# every container and $work go at exit. Needs $KILN.
bench_store() {
  work=$(mktemp -d "/tmp/kiln-bench-$1.XXXXXX")
  export KILN_ROOT="$work/store" XDG_RUNTIME_DIR=
  trap bench_cleanup EXIT
  "$(dirname "${BASH_SOURCE[0]}")/../scripts/make-busybox-rootfs.sh" "$work/busybox.tar" >/dev/null
  "$KILN" import "$work/busybox.tar" busybox >/dev/null
}
bench_cleanup() {
  "$KILN" rm -f $("$KILN" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  rm -rf "$work" 2>/dev/null || true
}

# registry_yml ADDR ROOTDIR: a docker-registry config serving ROOTDIR on
# ADDR (loopback), quiet.
registry_yml() {
  printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n'
  printf 'storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$2" "$1"
}
