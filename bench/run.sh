#!/usr/bin/env bash
# Container start-up cost: `kiln run --rm IMAGE true` beside bubblewrap on an
# unpacked copy of the same rootfs (the floor: no store, no overlay, no
# record), median of N runs each, in the same run.
#
#   bench/run.sh [KILN_BIN] [N]
#
# Runs as the invoking user (rootless when not root; as root, e.g.
# `runuser -u kiln-test -- bench/run.sh /abs/path/kiln` for the rootless
# figure). Prints one line per tool and the ratio, and the load average (on a
# busy machine the ratio is what counts). Needs busybox (busybox-static) and
# bwrap. With podman installed (and BENCH_PODMAN unset or 1), podman's
# `run --rm` of the same image runs in the same rounds, on a storage of its
# own under the bench's temp dir (--root/--runroot: the user's podman
# storage is not touched).
set -eu
KILN=${1:-${KILN_BIN:-$(dirname "$0")/../build/src/cli/kiln}}
N=${2:-20}
command -v bwrap >/dev/null || { echo "bwrap not installed" >&2; exit 1; }
BB=$(command -v busybox) || { echo "busybox not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/kiln-bench-run.XXXXXX)
trap 'rm -rf "$work" 2>/dev/null || true' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,tmp,proc,dev,sys}
cp "$BB" "$root/bin/busybox"
for a in sh true echo; do ln -s busybox "$root/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" .

export KILN_ROOT="$work/store"
"$KILN" import "$work/rootfs.tar" benchbox >/dev/null
"$KILN" run --rm --network none benchbox true  # warm: unpack the layer once
podman=()
if command -v podman >/dev/null && [ "${BENCH_PODMAN:-1}" = 1 ]; then
  # Here (PODMAN-HERE.md): runc (crun refuses hybrid cgroups), ulimits at
  # or below the inherited hard limits.
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' \
    "$(ulimit -Hn)" "$(ulimit -Hn)" >"$work/containers.conf"
  podman=(env CONTAINERS_CONF="$work/containers.conf" podman --root "$work/podman" --runroot "$work/podman-run"
          --storage-driver vfs --events-backend none)
  if ! { "${podman[@]}" import "$work/rootfs.tar" benchbox >/dev/null 2>&1 &&
         "${podman[@]}" run --rm --network none benchbox true >/dev/null 2>&1; }; then
    echo "podman cannot run here: its rows are left out" >&2
    podman=()
  fi
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The three commands run interleaved (one of each per round), so that they
# see the same machine load; each gets its median (and minimum) wall time.
. "$(dirname "$0")/lib.sh"  # ms, median_ms
: >"$work/bwrap"; : >"$work/none"; : >"$work/private"; : >"$work/podman-none"; : >"$work/podman-private"
for i in $(seq 1 "$N"); do
  ms bwrap --unshare-all --bind "$root" / --proc /proc --dev /dev --tmpfs /tmp /bin/true >>"$work/bwrap"
  ms "$KILN" run --rm --network none benchbox true >>"$work/none"
  ms "$KILN" run --rm benchbox true >>"$work/private"
  if [ ${#podman[@]} -gt 0 ]; then
    ms "${podman[@]}" run --rm --network none benchbox true >>"$work/podman-none"
    ms "${podman[@]}" run --rm benchbox true >>"$work/podman-private"
  fi
done
median() { median_ms "$1" 2; }  # median FILE: in ms
minimum() { sort -n "$1" | head -1 | awk '{printf "%.2f\n", $1 / 1000}'; }
bwrap_ms=$(median "$work/bwrap")
kiln_none_ms=$(median "$work/none")
kiln_ms=$(median "$work/private")
echo "load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bwrap --unshare-all (unpacked rootfs)    median of $N: ${bwrap_ms} ms (min $(minimum "$work/bwrap"))"
echo "kiln run --rm --network none IMAGE true  median of $N: ${kiln_none_ms} ms (min $(minimum "$work/none"))  ($(awk -v a="$kiln_none_ms" -v b="$bwrap_ms" 'BEGIN{printf "%.1f", a/b}')x bwrap)"
echo "kiln run --rm IMAGE true (private net)   median of $N: ${kiln_ms} ms (min $(minimum "$work/private"))  ($(awk -v a="$kiln_ms" -v b="$bwrap_ms" 'BEGIN{printf "%.1f", a/b}')x bwrap)"
if [ ${#podman[@]} -gt 0 ]; then
  for row in none private; do
    m=$(median "$work/podman-$row")
    printf 'podman run --rm %-24s median of %s: %s ms (min %s)  (%sx bwrap)\n' "$([ $row = none ] && echo '--network none IMAGE true' || echo 'IMAGE true')" \
      "$N" "$m" "$(minimum "$work/podman-$row")" "$(awk -v a="$m" -v b="$bwrap_ms" 'BEGIN{printf "%.1f", a/b}')"
  done
  "${podman[@]}" rmi -a -f >/dev/null 2>&1 || true
fi
