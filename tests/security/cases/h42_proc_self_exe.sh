#!/usr/bin/env bash
# H42 (CVE-2019-5736): a RUN step replaces /bin/sh with `#!/proc/self/exe`,
# so the next step's shell is whatever /proc/self/exe is when kiln execs it;
# steps also try to write every /proc/N/exe they can see. The kiln and
# kiln-sandbox binaries have the same sha256 afterwards (the helper runs from
# a sealed memfd), and the build ends (no hang).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
have_busybox || { cat "$WORK/err" >&2; exit 1; }
bins=("$KILN_BIN")
for h in "$(dirname "$KILN_BIN")/kiln-sandbox" "$(dirname "$KILN_BIN")/../sandbox/kiln-sandbox" "${KILN_SANDBOX_HELPER:-}"; do
  [ -n "$h" ] && [ -f "$h" ] && bins+=("$(readlink -f "$h")")
done
sha256sum "${bins[@]}" >"$WORK/before"
writer='for p in /proc/[0-9]*; do echo pwned >>$p/exe 2>/dev/null && echo WROTE $p; done; true'
mkdir -p "$WORK/ctx"
cat >"$WORK/ctx/Containerfile" <<CF
FROM busybox
RUN $writer
RUN rm /bin/sh && echo '#!/proc/self/exe' >/bin/sh && chmod 755 /bin/sh
RUN echo second step
RUN ["/bin/busybox", "sh", "-c", "$writer"]
CF
own "$WORK/ctx"
run_k build --no-cache -t localhost/h42 "$WORK/ctx"
echo "build exit $RC" >&2
case $RC in 0 | 1 | 2 | 125) ;; *) show >&2; not_contained "the build exited $RC" ;; esac
# the image (if built) with #!/proc/self/exe as /bin/sh, started by kiln run
if [ "$RC" -eq 0 ]; then
  run_k run --rm localhost/h42 true
  run_k run --rm localhost/h42 /bin/busybox sh -c "$writer"
  run_k run --rm --entrypoint /bin/sh localhost/h42 -c true
fi
run_k run --rm busybox sh -c "$writer"
if ! sha256sum -c --quiet "$WORK/before" >&2; then
  not_contained "a host binary changed: $(sha256sum "${bins[@]}")"
fi
prune_check
