#!/usr/bin/env bash
# H45 (race harness, docs/security.md; CVE-2021-30465, CVE-2024-23651,
# CVE-2018-15664): RUN steps whose background processes loop, for 5 s,
# swapping a directory and a symlink to a host canary (a directory of the
# work dir, outside the context) with busybox `mv` (renameat2 is not in
# busybox; the rename loop gives the same windows) on paths the builder
# touches next:
#   - stage "racer": a loop in its own rootfs on /w while the step has a
#     tmpfs mount stub under /w (stub cleanup), left running when the step's
#     shell exits (the layer's export, the next COPY into /w);
#   - stage "loop" (runs in parallel): the same loop on /c/d inside a shared
#     cache mount, while stage "victim" mounts a tmpfs and a bind under /c/d
#     and copies out of it (mount setup through a racing path);
#   - stage "linked": a symlink /d -> the canary in its layer, then
#     `COPY f /d/` and `COPY --from=linked /d/ /out/`: resolved in the stage's
#     root, never on the host (a leaked canary file fails the last RUN).
# The canary must be untouched (same files, modes and content) whether the
# build succeeds or fails; a failure must be one clear error line.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "cannot import the busybox base" >&2; exit 1; }
CANARY=$WORK/canary
mkdir -p ctx "$CANARY/stub" "$CANARY/d/stub"
echo "h45-host-canary-$$" >"$CANARY/known"
echo ctx-file >ctx/f
chmod -R a+rX ctx "$CANARY"
# The canary belongs to the user kiln runs as: kiln could write there.
[ "$MODE" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER:" "$CANARY" ctx
snap() { (cd "$CANARY" && find . -printf '%p %y %m %s %U\n' | sort; cat known; findmnt -rn -o TARGET | grep -F "$CANARY"); }
before=$(snap)

# swap DIR: one round trip dir -> symlink to the canary -> dir (by renames).
swap='mv @D@ @D@.x; mv @D@.l @D@; mv @D@ @D@.l; mv @D@.x @D@'
loop() { # loop DIR SECONDS: a bounded loop as shell text
  local s=${swap//@D@/$1}
  echo "end=\$((\$(date +%s)+$2)); n=0; while [ \$(date +%s) -lt \$end ]; do $s; n=\$((n+1)); done"
}
# Three builds (a clean error in one must not hide the others). The root of
# each stage also has a directory at the canary's path (with another file):
# a symlink resolved in the root lands there, one resolved on the host
# reaches the canary.
inroot="mkdir -p $CANARY/stub && echo in-root >$CANARY/inroot"
cat >C-racer <<CF
FROM busybox AS racer
RUN $inroot && mkdir -p /w/sub && ln -s $CANARY /w.l
RUN --mount=type=tmpfs,target=/w/stub sh -c '( $(loop /w 5) ) >/dev/null 2>&1 & sleep 0.5'
COPY f /w/
RUN --mount=type=tmpfs,target=/w/stub sh -c '( $(loop /w 3) ) >/dev/null 2>&1 & sleep 0.2'
COPY f /w/sub/
FROM busybox
COPY --from=racer /w/ /out/
RUN if grep -rqs h45-host-canary /out; then echo LEAKED-HOST-FILE; exit 3; fi
CF
cat >C-cache <<CF
FROM busybox AS loop
RUN --mount=type=cache,id=race,target=/c sh -c 'rm -rf /c/*; mkdir -p /c/d/stub; ln -sfn $CANARY /c/d.l; touch /c/started; $(loop /c/d 5); echo \$n >/c/iterations; rm -f /c/started'
FROM busybox AS victim
RUN $inroot
RUN --mount=type=cache,id=race,target=/c sh -c 'i=0; until [ -e /c/started ] || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i+1)); done'
RUN --mount=type=cache,id=race,target=/c --mount=type=tmpfs,target=/c/d/stub --mount=type=bind,source=f,target=/c/d/f sh -c 'cp -a /c/d/. /tmp/ 2>/dev/null; true'
RUN --mount=type=cache,id=race,target=/c --mount=type=tmpfs,target=/c/d/stub sh -c 'echo x >/c/d/stub/y 2>/dev/null; true'
RUN --mount=type=cache,id=race,target=/c --mount=type=bind,source=f,target=/c/d/f true
RUN --mount=type=cache,id=race,target=/c --mount=type=tmpfs,target=/c/d/stub/deeper true
FROM busybox
COPY --from=loop /etc/passwd /p
COPY --from=victim /tmp/ /out/
RUN if grep -rqs h45-host-canary /out; then echo LEAKED-HOST-FILE; exit 3; fi
CF
cat >C-link <<CF
FROM busybox AS linked
RUN $inroot && ln -s $CANARY /d && ln -s $CANARY/known /k
COPY f /d/
FROM busybox
COPY --from=linked /d/ /out/
COPY --from=linked /d/ /out2
RUN if grep -rqs h45-host-canary /out /out2; then echo LEAKED-HOST-FILE; exit 3; fi; test -f /out/inroot && test -f /out/f
CF
chmod 644 C-racer C-cache C-link
[ "$MODE" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER:" C-racer C-cache C-link
for c in C-racer C-cache C-link; do
  kiln_as "$MODE" "$store" build -q -f $c ctx >out-$c 2>err-$c
  rc=$?
  after=$(snap)
  if [ "$before" != "$after" ]; then
    echo "$c: the host canary changed (build exit $rc):" >&2
    diff <(echo "$before") <(echo "$after") >&2
    cat err-$c >&2
    exit 1
  fi
  if grep -q LEAKED-HOST-FILE out-$c err-$c; then
    echo "$c: a host canary file reached the image (a symlink followed out of the root)" >&2
    exit 1
  fi
  if [ $rc -ne 0 ]; then
    # An error is allowed, but one that names the step, not a crash.
    [ $rc -lt 128 ] || { cat err-$c >&2; echo "$c: the build crashed ($rc)" >&2; exit 1; }
    grep -q "$c:[0-9]" err-$c || { cat err-$c >&2; echo "$c: the build failed ($rc) without naming the step" >&2; exit 1; }
    echo "# $c failed cleanly: $(grep error: err-$c | head -1)" >&2
  fi
done
sleep 1  # a loop left running must not outlive the build; let it show
after=$(snap)
[ "$before" = "$after" ] || { echo "the host canary changed after the builds" >&2; diff <(echo "$before") <(echo "$after") >&2; exit 1; }
n=$(cat "$store"/cache-mounts/*/iterations 2>/dev/null | head -1)
echo "# cache-loop swaps: ${n:-?}" >&2
extra=$(ls -A "$WORK" | grep -v -x -e store -e ctx -e canary -e busybox.tar -e 'C-[a-z]*' -e 'out-C-[a-z]*' -e 'err-C-[a-z]*')
[ -z "$extra" ] || { echo "new files in the work dir: $extra" >&2; exit 1; }
kiln_as "$MODE" "$store" prune --check >/dev/null 2>&1 || { echo "prune --check fails" >&2; exit 1; }
exit 0
