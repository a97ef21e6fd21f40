#!/usr/bin/env bash
# H30: a registry that answers a layer with the right length but the wrong
# content (and a Docker-Content-Digest header claiming the right digest), or
# answers a pull by digest with another manifest: `kiln pull` fails with
# "digest mismatch" naming the digest, stores nothing of it, lists no image.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
a = mk.image("oci", work + "/busybox.tar", [mk.Tar().file("a", b"A" * 20000).bytes()], work + "/a", ref="x:1")
b = mk.image("oci", work + "/busybox.tar", [mk.Tar().file("b", b"B" * 20000).bytes()], work + "/b", ref="x:1")
open(work + "/a.layer", "w").write(a["layers"][1]["digest"])
open(work + "/a.manifest", "w").write(a["manifest_digest"])
open(work + "/b.manifestbytes", "wb").write(mk.jdump(b["manifest"]))
PY
manifest=$(cat "$WORK/a.manifest")
start_hostile wrong-content "$WORK/a"
run_k pull -q "$HREG/h30/img:1"
[ "$RC" -ne 0 ] || { show >&2; not_contained "a layer with the wrong content was accepted"; }
case $RC in 1 | 2 | 125) ;; *) show >&2; not_contained "exit $RC" ;; esac
grep -q "digest mismatch" "$WORK/err" || { show >&2; not_contained "no \"digest mismatch\""; }
# (both layers are served wrong; whichever fails first is named)
named=$(grep -oE 'blob sha256:[0-9a-f]{64}' "$WORK/err" | head -1 | cut -d: -f2)
[ -n "$named" ] && [ -f "$WORK/a/blobs/sha256/$named" ] || { show >&2; not_contained "the error does not name the layer's digest"; }
for b in "$WORK"/a/blobs/sha256/*; do
  [ "$(stat -c %s "$b")" -gt 10000 ] || continue  # the layers (config and manifest are served right)
  [ ! -e "$STORE/blobs/sha256/${b##*/}" ] || not_contained "a wrong layer is stored under sha256:${b##*/}"
done
run_k images --format '{{.Names}}'
! grep -q h30 "$WORK/out" || not_contained "the image is listed"
no_staging_left
prune_check
kill "$HPID"; wait "$HPID" 2>/dev/null
start_hostile wrong-manifest "$WORK/a" --other-manifest "$WORK/b.manifestbytes"
run_k pull -q "$HREG/h30/img@$manifest"
[ "$RC" -ne 0 ] || { show >&2; not_contained "another manifest was accepted for $manifest"; }
case $RC in 1 | 2 | 125) ;; *) show >&2; not_contained "exit $RC" ;; esac
grep -q "digest mismatch" "$WORK/err" || { show >&2; not_contained "by digest: no \"digest mismatch\""; }
grep -q "${manifest:7:12}" "$WORK/err" || { show >&2; not_contained "the error does not name $manifest"; }
run_k images --format '{{.Names}}'
! grep -q h30 "$WORK/out" || not_contained "the image is listed"
prune_check
