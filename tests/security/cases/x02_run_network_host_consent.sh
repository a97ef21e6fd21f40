#!/usr/bin/env bash
# RUN --network=host is granted by whoever runs the build, never by the
# Containerfile (docs/security.md I9; BuildKit's network.host entitlement):
# without `--allow network.host` (or a build run with `--network host`) the
# build stops before any step runs, exit 2, naming the Containerfile line,
# also when the step is in the cache. `kiln build --network none` must never
# give a step the host's network: a host-only service on 127.0.0.1 stays
# unreachable. With the grant, the step reaches it (as root and as the test
# user, whose host network is its own). Usage: bash FILE MODE WORKDIR.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
need_busybox
mkdir -p "$WORK/www"
echo host-secret >"$WORK/www/secret"
serve_dir "$WORK/www" secret
containerfile <<CF
FROM busybox
RUN echo first >/first
RUN --network=host wget -q -O- http://127.0.0.1:$port/secret >/got; true
CF
refused() {  # refused WHAT ARGS...: the build must stop with exit 2 and name Containerfile:3
  local what=$1; shift
  run_k build -t hostnet "$@" -f Containerfile ctx
  [ "$RC" -eq 2 ] || { show >&2; not_contained "$what: exit $RC, want 2 (refused)"; }
  grep -q 'Containerfile:3: RUN --network=host is not allowed.*--allow network.host' "$WORK/err" ||
    { show >&2; not_contained "$what: no one-line refusal naming Containerfile:3"; }
  k inspect hostnet >/dev/null 2>&1 && not_contained "$what: the image was named"
  return 0
}
refused "build --network none" --network none
refused "build (default network)"
# The grant: the step uses the host's network.
run_k build -t hostnet --allow network.host -f Containerfile ctx
[ "$RC" -eq 0 ] || { show >&2; not_contained "--allow network.host: the build failed"; }
got=$(k run --rm --network none hostnet cat /got 2>/dev/null)
[ "$got" = host-secret ] || not_contained "--allow network.host: the RUN did not get the host network (got '$got')"
k rmi hostnet >/dev/null 2>&1
# Now cached: still refused without the grant.
refused "build --network none, step cached" --network none
run_k build -t hostnet --network host -f Containerfile ctx
[ "$RC" -eq 0 ] || { show >&2; not_contained "--network host: the build failed"; }
run_k build -t hostnet --allow security.insecure -f Containerfile ctx
[ "$RC" -eq 2 ] && grep -q 'allow security.insecure' "$WORK/err" ||
  { show >&2; not_contained "--allow security.insecure: not refused as an unknown entitlement"; }
exit 0
