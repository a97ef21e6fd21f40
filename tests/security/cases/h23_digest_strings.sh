#!/usr/bin/env bash
# H23: malformed digest strings (`sha256:../../../victim/hello`, upper case,
# short hex, `sha512:` with 64 hex digits, `md5:`, `%2F`, an embedded NUL) in
# index.json, in a manifest's config and layers, and on the command line are
# refused while parsing -- exit 1 or 2 with a message about the digest (125,
# podman's "no such image", for inspect on the command line) --
# before any path or URL is built: the victim beside the store and the
# layout is untouched.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK" <<'PY'
import sys, json, mkhostile as mk
work = sys.argv[1]
hexd = "a" * 64
bad = {
    "traversal": "sha256:../../../victim/hello",
    "upper": "sha256:" + "A" * 64,
    "short": "sha256:abc",
    "sha512": "sha512:" + hexd,
    "md5": "md5:d41d8cd98f00b204e9800998ecf8427e",
    "pct": "sha256:%2F..%2F" + "a" * 58,
    "nul": "sha256:" + "a" * 10 + "\u0000" + "a" * 53,
}
tar = mk.Tar().file("a", "x").bytes()
for name, dg in bad.items():
    for where in ("index", "config", "layer"):
        d = "%s/%s-%s" % (work, where, name)
        def mut(parts, where=where, dg=dg):
            if where == "layer":
                parts["layers"][1]["digest"] = dg
            elif where == "config" and parts["manifest"] is not None:
                parts["manifest"]["config"]["digest"] = dg
            elif where == "index" and parts["index_entry"] is not None:
                parts["index_entry"]["digest"] = dg
        parts = mk.image("oci", work + "/busybox.tar", [tar], d, ref="localhost/h23:1", mutate=mut)
        if where == "index":  # the entry is written after mutate sees it
            idx = json.load(open(d + "/index.json"))
            idx["manifests"][0]["digest"] = dg
            open(d + "/index.json", "w").write(json.dumps(idx))
open(work + "/names", "w").write(" ".join(bad))
PY
own "$WORK"
for name in $(cat "$WORK/names"); do
  for where in index config layer; do
    for src in "oci:$WORK/$where-$name"; do
      run_k pull "$src"
      [ "$RC" -ne 0 ] || { show >&2; not_contained "$src: a manifest with digest \"$name\" in $where was accepted"; }
      case $RC in 1 | 2) ;; *) show >&2; not_contained "$src: exit $RC" ;; esac
      grep -Eqi 'digest' "$WORK/err" || { show >&2; not_contained "$src: the error does not say the digest is malformed"; }
      expect_short_error 4
    done
  done
done
# the command line
for arg in 'sha256:../../../victim/hello' "sha256:$(printf 'A%.0s' $(seq 64))" 'sha256:abc' 'md5:d41d8cd98f00b204e9800998ecf8427e'; do
  for cmd in inspect rmi; do
    run_k $cmd "$arg"
    # 125: podman's status for an image that does not exist (inspect)
    case $RC in 1 | 2 | 125) ;; *) show >&2; not_contained "$cmd $arg: exit $RC" ;; esac
  done
  run_k pull "127.0.0.1:9/x@$arg"
  [ "$RC" -eq 2 ] || { show >&2; not_contained "pull 127.0.0.1:9/x@$arg: exit $RC, want 2 (invalid reference)"; }
done
check_victim
prune_check
