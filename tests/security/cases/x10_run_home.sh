#!/usr/bin/env bash
# Issue [2.1] item 4: RUN steps had no HOME. As Docker/BuildKit (runc) and
# buildah: the user's passwd entry (/root for root), / without an entry, and
# an ENV HOME wins.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
need_busybox
containerfile <<'CF'
FROM busybox
RUN test "$HOME" = /root
USER nobody
RUN test "$HOME" = /nonexistent
USER 1234
RUN test "$HOME" = /
ENV HOME=/custom
RUN test "$HOME" = /custom
CF
k build -q -f Containerfile ctx >/dev/null 2>err || { cat err >&2; echo "HOME is not as in Docker" >&2; exit 1; }
exit 0
