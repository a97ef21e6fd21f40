#!/usr/bin/env bash
# Issue [2.1] item 4: `RUN --mount=type=secret,id=x,env=TOKEN` (docs/build.md)
# failed with "mount target must be an absolute path". Without target it
# sets only the variable and mounts nothing (BuildKit).
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "cannot import the busybox base" >&2; exit 1; }
mkdir -p ctx && chmod a+rx ctx
printf 's3cret' >secret && chmod 644 secret
cat >Containerfile <<'CF'
FROM busybox
RUN --mount=type=secret,id=x,env=TOKEN sh -c 'test "$TOKEN" = s3cret && test ! -e /run/secrets/x'
CF
chmod 644 Containerfile
kiln_as "$MODE" "$store" build -q -f Containerfile --secret "id=x,src=$WORK/secret" ctx >/dev/null 2>err ||
  { cat err >&2; echo "env-only secret failed" >&2; exit 1; }
exit 0
