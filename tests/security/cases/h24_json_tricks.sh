#!/usr/bin/env bash
# H24: JSON tricks in a layout pulled with pull oci: (and load): duplicate
# `layers` keys, a document with both `manifests` and `layers`
# (CVE-2021-41190), a UTF-8 BOM, a manifest and a config over 4 MiB, JSON
# nested 100,000 deep are refused with a bounded, clear error; unknown
# top-level fields are ignored (the image pulls).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, json, mkhostile as mk
work = sys.argv[1]
tar = mk.Tar().file("a", "x\n").bytes()
def make(name, manifest_fn=None, config_fn=None):
    def mut(parts):
        if parts["manifest"] is None:
            if config_fn:
                parts["config_bytes"] = config_fn(parts["config"])
            return
        if manifest_fn:
            parts["manifest_bytes"] = manifest_fn(parts["manifest"])
    d = "%s/%s" % (work, name)
    mk.image("oci", work + "/busybox.tar", [tar], d, ref="localhost/h24-%s:1" % name, mutate=mut)
    mk.archive(d, d + ".tar")
def dup_layers(m):
    s = mk.jdump(m).decode()
    body = s[1:-1]
    return ("{" + body + ',"layers":[]}').encode()
make("duplicate", manifest_fn=dup_layers)
make("ambiguous", manifest_fn=lambda m: mk.jdump(dict(m, manifests=[])))
make("bom", manifest_fn=lambda m: b"\xef\xbb\xbf" + mk.jdump(m))
make("bigmanifest", manifest_fn=lambda m: mk.jdump(dict(m, annotations={"x": "y" * (5 << 20)})))
make("bigconfig", config_fn=lambda c: mk.jdump(dict(c, pad="z" * (5 << 20))))
make("deep", config_fn=lambda c: mk.jdump(c)[:-1] + b',"deep":' + b"[" * 100000 + b"]" * 100000 + b"}")
make("unknown", manifest_fn=lambda m: mk.jdump(dict(m, somethingNew={"a": 1})))
PY
own "$WORK"
for name in duplicate ambiguous bom bigmanifest deep bigconfig; do
  for how in "pull oci:$WORK/$name" "pull oci-archive:$WORK/$name.tar" "load -i $WORK/$name.tar"; do
    # shellcheck disable=SC2086
    run_k $how
    if [ "$RC" -eq 0 ]; then
      show >&2
      k prune --check >&2
      not_contained "$how: accepted (the image is stored, but nothing can parse it: prune --check calls the store inconsistent)"
    fi
    case $RC in 1 | 2) ;; *) show >&2; not_contained "$how: exit $RC" ;; esac
    grep -Eqi 'duplicate|manifests|layers|ambiguous|byte.order|BOM|MiB|too (large|big|deep)|larger|nest|deep|json' "$WORK/err" ||
      { show >&2; not_contained "$how: the error does not say what is wrong"; }
    expect_short_error 4
    run_k images --format '{{.Names}}'
    ! grep -q "h24-$name" "$WORK/out" || not_contained "$how: the image is listed"
  done
done
expect_ok pull "oci:$WORK/unknown"
expect_ok run --rm --network none localhost/h24-unknown:1 cat /a
no_staging_left
prune_check
