#!/usr/bin/env bash
# Issue [2.1] item 4: RUN steps had no HOME. As Docker/BuildKit (runc) and
# buildah: the user's passwd entry (/root for root), / without an entry, and
# an ENV HOME wins.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "cannot import the busybox base" >&2; exit 1; }
mkdir -p ctx && chmod a+rx ctx
cat >Containerfile <<'CF'
FROM busybox
RUN test "$HOME" = /root
USER nobody
RUN test "$HOME" = /nonexistent
USER 1234
RUN test "$HOME" = /
ENV HOME=/custom
RUN test "$HOME" = /custom
CF
chmod 644 Containerfile
kiln_as "$MODE" "$store" build -q -f Containerfile ctx >/dev/null 2>err || { cat err >&2; echo "HOME is not as in Docker" >&2; exit 1; }
exit 0
