#!/usr/bin/env bash
# H41: no descriptor of kiln (store locks, blob files, rootfs dirfds, the
# helper's sockets) reaches a RUN step or a `kiln run` container: the shell
# started there holds only 0, 1 and 2 (runc's "detect fd leak" check).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
have_busybox || { cat "$WORK/err" >&2; exit 1; }
# ls lists its own fds (inherited from the shell, which kiln started); its
# own directory fd (-> /proc/N/fd) is not counted.
probe='ls -l /proc/self/fd/ | sed -n "s/.* \([0-9][0-9]*\) -> \(.*\)/\1 \2/p" | while read n t; do case $n in 0|1|2) ;; *) case $t in /proc/*/fd) ;; *) echo "LEAK fd $n -> $t" ;; esac ;; esac; done; echo probe-done'
mkdir -p "$WORK/ctx"
printf 'FROM busybox\nRUN %s\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t %s\n' "$probe" "$probe" >"$WORK/ctx/Containerfile"
own "$WORK/ctx"
run_k build --no-cache -t localhost/h41 "$WORK/ctx"
[ "$RC" -eq 0 ] || { show >&2; not_contained "the build failed"; }
# (a step's output lines come as they are, as buildah prints them; the
# command line is echoed too, in a STEP line, so match whole lines only)
[ "$(cat "$WORK/out" "$WORK/err" | grep -cx 'probe-done')" -ge 2 ] || { show >&2; not_contained "the RUN probes did not run"; }
if cat "$WORK/out" "$WORK/err" | grep 'LEAK fd [0-9]'; then not_contained "a RUN step inherited descriptors"; fi
for args in "--rm" "--rm --network none" "--rm -v $WORK/ctx:/m"; do
  # shellcheck disable=SC2086
  run_k run $args busybox sh -c "$probe"
  [ "$RC" -eq 0 ] && grep -q probe-done "$WORK/out" || { show >&2; not_contained "run $args: the probe failed"; }
  if grep 'LEAK fd [0-9]' "$WORK/out"; then not_contained "kiln run $args: the container inherited descriptors"; fi
done
# and through exec into a detached container
run_k run -d --name h41 busybox sleep 60
if [ "$RC" -eq 0 ]; then
  run_k exec h41 sh -c "$probe"
  ok=$RC; leaks=$(grep 'LEAK fd [0-9]' "$WORK/out")
  k rm -f h41 >/dev/null 2>&1
  [ "$ok" -eq 0 ] || { show >&2; not_contained "exec: the probe failed"; }
  [ -z "$leaks" ] || { echo "$leaks" >&2; not_contained "kiln exec: the process inherited descriptors"; }
fi
prune_check
