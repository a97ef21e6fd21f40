#!/usr/bin/env bash
# H07: sibling-prefix escapes (`../<layer dir>-evil/secret` style: a string
# prefix check would let them through) are refused for files and hardlinks.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkdir -p "$STORE/layers-evil" "$WORK/store-evil"
echo secret >"$WORK/store-evil/secret"
own "$WORK/store-evil" "$STORE"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
open(work + "/link.tar", "wb").write(mk.Tar().hardlink("grab", "../../../store-evil/secret").bytes())
open(work + "/file.tar", "wb").write(mk.Tar().file("../layers-evil/secret", "pwned").bytes())
open(work + "/file2.tar", "wb").write(mk.Tar().file("../../../store-evil/secret", "pwned").bytes())
PY
refused import "$WORK/link.tar" 'path escapes root'
refused oci "$WORK/file.tar" 'path escapes root'
refused add "$WORK/file2.tar" 'path escapes root'
[ "$(cat "$WORK/store-evil/secret")" = secret ] || not_contained "store-evil/secret was overwritten"
[ -z "$(ls -A "$STORE/layers-evil")" ] || not_contained "written into layers-evil: $(ls -A "$STORE/layers-evil")"
[ "$(stat -c %h "$WORK/store-evil/secret")" = 1 ] || not_contained "store-evil/secret got a hardlink"
rmdir "$STORE/layers-evil"
prune_check
