#!/usr/bin/env bash
# Issue [2.1] item 4: `COPY --from=busybox` looked up docker.io while
# `FROM busybox` found localhost/busybox. One rule: both use the local
# image, with --pull=never and with the default pull policy (this machine
# has no route to docker.io, so a lookup there fails).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
need_busybox
printf 'FROM busybox\nCOPY --from=busybox /bin/busybox /bb\nRUN cmp /bb /bin/busybox\n' | containerfile
for pull in never missing; do
  k build -q --pull=$pull -f Containerfile ctx >/dev/null 2>err ||
    { cat err >&2; echo "COPY --from=busybox (--pull=$pull) did not use localhost/busybox" >&2; exit 1; }
done
exit 0
