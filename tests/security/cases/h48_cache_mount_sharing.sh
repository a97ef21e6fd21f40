#!/usr/bin/env bash
# H48 (cache mounts under concurrency, docs/security.md, CVE-2024-23651): two
# builds at once, each with two stages that run in parallel (every ready
# stage runs by default), all on `RUN --mount=type=cache,id=c,target=/c`:
#   - sharing=shared: the four bodies see one cache (each waits until it sees
#     the others' files), nothing escapes the cache root, no host file is
#     visible. This also proves the bodies run concurrently, so the locked
#     check below can fail.
#   - sharing=locked: the bodies never overlap (a busy marker, and the
#     start/end lines of the cache's log strictly alternate).
#   - sharing=private: no body sees another body's in-flight writes.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "cannot import the busybox base" >&2; exit 1; }
mkdir -p ctx canary
echo "h48-host-canary-$$" >canary/known
canary_name=h48-canary-$$-marker
touch "canary/$canary_name"
chmod -R a+rX ctx canary
canary_before=$(cd canary && find . -printf '%p %m %s\n' | sort; cat known)

# cf SHARING BODY-TEMPLATE TAG: a Containerfile of two parallel stages (and
# a last one depending on both); @ME@ is replaced by TAG-a / TAG-b.
cf() {
  local sharing=$1 body=$2 tag=$3
  {
    for s in a b; do
      echo "FROM busybox AS $s"
      echo "RUN --mount=type=cache,id=c,target=/c,sharing=$sharing sh -c '${body//@ME@/$tag-$s}'"
    done
    echo "FROM busybox"
    echo "COPY --from=a /etc/passwd /a"
    echo "COPY --from=b /etc/passwd /b"
  } >"C-$tag"
  chmod 644 "C-$tag"
}

# both TAG1 TAG2: runs the two builds at once; fails on any error.
both() {
  kiln_as "$MODE" "$store" build -q -f "C-$1" -t "$1" ctx >/dev/null 2>"err-$1" &
  local p1=$!
  kiln_as "$MODE" "$store" build -q -f "C-$2" -t "$2" ctx >/dev/null 2>"err-$2" &
  local p2=$! rc=0
  wait $p1 || rc=1
  wait $p2 || rc=1
  if [ $rc -ne 0 ]; then
    cat "err-$1" "err-$2" >&2
    return 1
  fi
}

# shared: every body drops its name, waits (10 s at most) for all four,
# checks that no host file shows up (the canary's name anywhere but /proc)
# and that /c/.. is the container's root.
shared='touch /c/sh-@ME@; i=0; while [ $(ls /c | grep -c "^sh-s[12]-[ab]$") -lt 4 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; [ $(ls /c | grep -c "^sh-s[12]-[ab]$") -eq 4 ] || { echo NOT-SHARED; ls /c; exit 3; }; if find / -path /proc -prune -o -name '"$canary_name"' -print | grep -q .; then echo HOST-FILE-VISIBLE; exit 4; fi; [ "$(cd /c/.. && pwd)" = / ] || exit 5; ln -sfn / /c/rootlink-@ME@'
cf shared "$shared" s1
cf shared "$shared" s2
both s1 s2 || { echo "sharing=shared: the builds failed (see above)" >&2; exit 1; }

# locked: a busy marker; a body that finds it set records the overlap.
locked='if [ -e /c/busy ]; then echo "@ME@ saw $(cat /c/busy)" >>/c/overlap; fi; echo @ME@ >/c/busy; echo "start @ME@" >>/c/log; sleep 1; echo "end @ME@" >>/c/log; rm -f /c/busy'
cf locked "$locked" l1
cf locked "$locked" l2
both l1 l2 || { echo "sharing=locked: the builds failed (see above)" >&2; exit 1; }

# private: each body drops its name, waits 2 s, and must not see another
# body's in-flight name.
private='touch /c/pv-@ME@; sleep 2; other=$(ls /c | grep "^pv-" | grep -v "^pv-@ME@$"); if [ -n "$other" ]; then echo "@ME@ sees $other" >/tmp/x; echo "PRIVATE-LEAK: @ME@ sees $other"; exit 6; fi; rm -f /c/pv-@ME@'
cf private "$private" p1
cf private "$private" p2
both p1 p2 || { echo "sharing=private: the builds failed (see above)" >&2; exit 1; }

cache=$(ls -d "$store"/cache-mounts/*/ 2>/dev/null)
[ "$(echo "$cache" | grep -c .)" -eq 1 ] || { echo "want one cache directory for id=c, got: $cache" >&2; exit 1; }
if [ -e "$cache/overlap" ]; then
  echo "sharing=locked: the RUN bodies overlapped:" >&2
  cat "$cache/overlap" >&2
  exit 1
fi
# The log alternates start X / end X, four times.
if ! awk 'NR%2==1 { if ($1!="start") bad=1; who=$2 } NR%2==0 { if ($1!="end" || $2!=who) bad=1 } END { exit (bad || NR!=8) }' "$cache/log"; then
  echo "sharing=locked: the log does not alternate:" >&2
  cat "$cache/log" >&2
  exit 1
fi
canary_after=$(cd canary && find . -printf '%p %m %s\n' | sort; cat known)
[ "$canary_before" = "$canary_after" ] || { echo "the host canary changed" >&2; exit 1; }
# Nothing left the store: no new entry in the work dir.
extra=$(ls -A "$WORK" | grep -v -x -e store -e ctx -e canary -e busybox.tar -e 'C-[slp][12]' -e 'err-[slp][12]')
[ -z "$extra" ] || { echo "new files in the work dir: $extra" >&2; exit 1; }
kiln_as "$MODE" "$store" prune --check >/dev/null 2>&1 || { echo "prune --check fails" >&2; exit 1; }
exit 0
