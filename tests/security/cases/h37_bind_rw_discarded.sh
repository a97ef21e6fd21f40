#!/usr/bin/env bash
# H37 (rw bind writes discarded, issue [2.1]): `RUN --mount=type=bind,
# target=/m,rw` that writes an executable .git/hooks/pre-commit, changes and
# removes files must leave the build context untouched (BuildKit semantics:
# the writes go to a throwaway copy-on-write layer). The step itself sees
# its writes; the image does not contain them.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "cannot import the busybox base" >&2; exit 1; }
mkdir -p ctx/sub
echo original >ctx/file
echo keep >ctx/sub/keep
cat >Containerfile <<'CF'
FROM busybox
RUN --mount=type=bind,target=/m,rw sh -c 'mkdir -p /m/.git/hooks && printf "#!/bin/sh\n" > /m/.git/hooks/pre-commit && chmod 755 /m/.git/hooks/pre-commit && echo evil > /m/file && rm /m/sub/keep && test -x /m/.git/hooks/pre-commit && test "$(cat /m/file)" = evil'
RUN --mount=type=bind,source=file,target=/f,rw sh -c 'echo evil > /f'
CF
chmod -R a+rX Containerfile ctx
[ "$MODE" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER:" ctx
before=$(cd ctx && find . -printf '%p %m %s\n' | sort; cat file sub/keep)
kiln_as "$MODE" "$store" build -q -f Containerfile -t rw ctx >/dev/null 2>err
rc=$?
after=$(cd ctx && find . -printf '%p %m %s\n' | sort; cat file sub/keep 2>&1)
if [ "$before" != "$after" ]; then
  echo "the build context changed (build exit $rc):" >&2
  diff <(echo "$before") <(echo "$after") >&2
  exit 1
fi
[ $rc -eq 0 ] || { cat err >&2; echo "the build failed with $rc (the step must see its own writes)" >&2; exit 1; }
kiln_as "$MODE" "$store" prune --check >/dev/null 2>&1 || { echo "prune --check fails" >&2; exit 1; }
exit 0
