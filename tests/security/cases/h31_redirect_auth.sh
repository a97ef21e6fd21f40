#!/usr/bin/env bash
# H31: a registry that needs credentials redirects blob downloads (307) to
# another origin (the same host, another port). The pull succeeds, and the
# credentials go to the registry only: the other origin never sees an
# Authorization header (curl CVE-2018-1000007 / CVE-2022-27776).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
mk.image("oci", work + "/busybox.tar", [mk.Tar().file("a", "redirected\n").bytes()], work + "/a", ref="x:1")
PY
start_hostile redirect-port-auth "$WORK/a"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$HREG" "$(printf 'user:s3cret-h31' | base64)" >"$WORK/auth.json"
own "$WORK/auth.json"
expect_ok pull -q --authfile "$WORK/auth.json" "$HREG/h31/img:1"
expect_ok run --rm --network none "$HREG/h31/img:1" cat /a
[ "$(cat "$WORK/out")" = redirected ] || { show >&2; not_contained "wrong content"; }
grep -q '^AUTH registry' "$WORK/server.log" || { cat "$WORK/server.log" >&2; not_contained "the credentials never reached the registry (the test is broken)"; }
grep -q '^GET /cdn/' "$WORK/server.log" || { cat "$WORK/server.log" >&2; not_contained "the redirect was not followed (the test is broken)"; }
if grep '^AUTH cdn' "$WORK/server.log" >&2; then not_contained "Authorization was sent to another origin"; fi
prune_check
