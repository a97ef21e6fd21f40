#!/usr/bin/env bash
# H37 (rw bind writes discarded, issue [2.1]): `RUN --mount=type=bind,
# target=/m,rw` that writes an executable .git/hooks/pre-commit, changes and
# removes files must leave the build context untouched (BuildKit semantics:
# the writes go to a throwaway copy-on-write layer). The step itself sees
# its writes; the image does not contain them. Also: a cache id climbing
# out (`id=../../../..$WORK/pwned`) stays in the store's cache root
# (CVE-2024-9675); `bind-propagation=suid` is refused (CVE-2024-9407);
# `target=/proc/self/fd/3` is refused; a rw bind from another stage whose
# source links to / (CVE-2024-1753) resolves the link inside that stage's
# root: the step writes into a throwaway layer over the stage, never the
# host's / nor the stage itself.
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
printf 'FROM busybox\nRUN --mount=type=cache,id=../../../../../../../..%s/pwned,target=/c touch /c/x\n' "$WORK" >C1
printf 'FROM busybox\nRUN --mount=type=bind,target=/m,bind-propagation=suid true\n' >C2
printf 'FROM busybox\nRUN --mount=type=tmpfs,target=/proc/self/fd/3 true\n' >C3
printf 'FROM busybox AS base\nRUN ln -s / /rootdir\nFROM busybox AS use\nRUN --mount=type=bind,from=base,source=/rootdir,target=/exploit,rw touch /exploit/BIND_BREAKOUT && test -e /exploit/BIND_BREAKOUT && test -L /exploit/rootdir && touch /done\nFROM base\nCOPY --from=use /done /done\nRUN test ! -e /BIND_BREAKOUT\n' >C4
chmod 644 C1 C2 C3 C4
kiln_as "$MODE" "$store" build -q -f C1 ctx >/dev/null 2>err1
[ -e "$WORK/pwned" ] && { echo "a cache id climbed out of the store: $WORK/pwned exists" >&2; exit 1; }
kiln_as "$MODE" "$store" build -q -f C4 ctx >/dev/null 2>err
rc=$?
[ $rc -eq 0 ] || { cat err >&2; echo "C4: the rw bind of a stage whose source links to / failed ($rc): want it resolved in the stage's root" >&2; exit 1; }
for c in C2 C3; do
  kiln_as "$MODE" "$store" build -q -f $c ctx >/dev/null 2>err
  rc=$?
  [ $rc -ne 0 ] || { echo "$c: $(cat $c | tail -1) was accepted" >&2; exit 1; }
  grep -q "$c:[0-9]" err || { cat err >&2; echo "$c: the error names no file:line" >&2; exit 1; }
done
[ -e /BIND_BREAKOUT ] && { echo "/BIND_BREAKOUT on the host" >&2; exit 1; }
kiln_as "$MODE" "$store" prune --check >/dev/null 2>&1 || { echo "prune --check fails" >&2; exit 1; }
exit 0
