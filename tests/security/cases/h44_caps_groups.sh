#!/usr/bin/env bash
# H44: in a RUN step, `kiln run` and `kiln exec`: CapInh = CapAmb = 0; the
# supplementary groups are the image's (from its /etc/group) plus the primary
# gid, never the host's (an unmapped host group shows up as 65534); a file
# with mode 0604 owned by the user's group is unreadable for that user.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK/l.tar" <<'PY'
import sys, mkhostile as mk
t = (mk.Tar().file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
     .file("etc/group", "root:x:0:\napp:x:1000:\nneg:x:50:app\nnogroup:x:65534:\n")
     .file("neg", "secret\n", mode=0o604, uid=0, gid=50).file("negp", "secret\n", mode=0o604, uid=0, gid=1000))
open(sys.argv[1], "wb").write(t.bytes())
PY
accepted oci "$WORK/l.tar"
probe='grep -E "^(CapInh|CapAmb|Groups|Gid):" /proc/self/status; cat /neg 2>/dev/null && echo READ-SUPP; cat /negp 2>/dev/null && echo READ-PRIM; echo end'
check_status() {  # check_status WHAT PRIMARY ALLOWED-GROUPS...
  local what=$1 primary=$2; shift 2
  grep -q '^CapInh:[[:space:]]*0000000000000000$' "$WORK/out" || { show >&2; not_contained "$what: CapInh is not 0"; }
  grep -q '^CapAmb:[[:space:]]*0000000000000000$' "$WORK/out" || { show >&2; not_contained "$what: CapAmb is not 0"; }
  local groups g
  groups=$(sed -n 's/^Groups:[[:space:]]*//p' "$WORK/out")
  for g in $groups; do
    case " $* $primary " in *" $g "*) ;; *) show >&2; not_contained "$what: supplementary group $g is not the image's" ;; esac
  done
  if [ "$primary" != 0 ]; then  # (root reads anything: CAP_DAC_OVERRIDE)
    ! grep -q READ-PRIM "$WORK/out" || { show >&2; not_contained "$what: a 0604 file of the primary group was readable"; }
  fi
}
run_k run --rm --network none "$IMG" sh -c "$probe"
[ "$RC" -eq 0 ] || { show >&2; not_contained "run failed"; }
check_status "run as root" 0 0
run_k run --rm --network none -u app "$IMG" sh -c "$probe"
[ "$RC" -eq 0 ] || { show >&2; not_contained "run -u app failed"; }
check_status "run -u app" 1000 1000 50
! grep -q READ-SUPP "$WORK/out" || { show >&2; not_contained "run -u app: a 0604 file of a supplementary group (neg, 50) was readable"; }
run_k run --rm --network none -u 1000:1000 "$IMG" sh -c "$probe"
check_status "run -u 1000:1000" 1000 1000 50
mkdir -p "$WORK/ctx"
printf 'FROM %s\nRUN %s\nUSER app\nRUN %s\n' "$IMG" "$probe" "$probe" >"$WORK/ctx/Containerfile"
own "$WORK/ctx"
run_k build --no-cache "$WORK/ctx"
[ "$RC" -eq 0 ] || { show >&2; not_contained "the build failed"; }
# a step's output lines come as they are, between the build's own lines
# (STEP n/N: with the command echoed, -->, COMMIT, warnings), as buildah's
cat "$WORK/out" "$WORK/err" | grep -Ev '^(STEP [0-9]+/[0-9]+: |\[[0-9]+/[0-9]+\] STEP |--> |COMMIT|Successfully tagged|kiln: |sha256:)' >"$WORK/out.run"
mv "$WORK/out.run" "$WORK/out"
[ "$(grep -c '^CapInh:' "$WORK/out")" = 2 ] || { show >&2; not_contained "RUN: the probes did not run"; }
! grep -q '^CapInh:.*[1-9a-f]' "$WORK/out" || { show >&2; not_contained "RUN: CapInh is not 0"; }
! grep -q '^CapAmb:.*[1-9a-f]' "$WORK/out" || { show >&2; not_contained "RUN: CapAmb is not 0"; }
# the second RUN is as app: its probe output follows the first one's "end"
sed -n '/^end$/,$p' "$WORK/out" | sed 1d >"$WORK/out.app"
! grep -q READ-PRIM "$WORK/out.app" || { show >&2; not_contained "RUN as app: a 0604 file of the primary group was readable"; }
! grep -q READ-SUPP "$WORK/out.app" || { show >&2; not_contained "RUN as app: a 0604 file of a supplementary group was readable"; }
grep '^Groups:' "$WORK/out" | grep -q '65534' && { show >&2; not_contained "RUN: an unmapped host group (65534) is in Groups"; }
prune_check
