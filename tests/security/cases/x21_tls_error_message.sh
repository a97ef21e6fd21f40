#!/usr/bin/env bash
# x21 (no H-id; H35's message): a loopback registry with a self-signed
# certificate: the error names the certificate failure. docs/registry.md says
# kiln falls back to plain HTTP "only when HTTPS cannot connect at all"; a
# certificate kiln cannot verify is not that, so the user must learn why.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
command -v openssl >/dev/null || skip "needs openssl"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
mk.image("oci", sys.argv[1] + "/busybox.tar", [mk.Tar().file("a", "tls\n").bytes()], sys.argv[1] + "/a", ref="x:1")
PY
mkdir -p "$WORK/tls"
start_hostile none "$WORK/a" --tls "$WORK/tls"
run_k pull -q "$HREG/x21/img:1"
[ "$RC" -ne 0 ] || { show >&2; not_contained "a self-signed certificate was accepted"; }
grep -Eqi 'certificate|SSL|TLS|verif' "$WORK/err" || { show >&2; not_contained "the error does not say that the certificate was refused (it reports the plain-HTTP fall-back instead)"; }
exit 0
