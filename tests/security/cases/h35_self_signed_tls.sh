#!/usr/bin/env bash
# H35: a registry with a self-signed certificate is refused (nothing pulled,
# nothing stored); --tls-verify=false, or the
# certificate in --cert-dir, lets the same pull through; a certificate for
# another name is refused even when its CA is trusted.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
command -v openssl >/dev/null || skip "needs openssl"
mkpy "$WORK" <<'PY'
import sys, mkhostile as mk
work = sys.argv[1]
mk.image("oci", work + "/busybox.tar", [mk.Tar().file("a", "tls\n").bytes()], work + "/a", ref="x:1")
PY
mkdir -p "$WORK/tls"
start_hostile none "$WORK/a" --tls "$WORK/tls"
run_k pull -q "$HREG/h35/img:1"
[ "$RC" -ne 0 ] || { show >&2; not_contained "a self-signed certificate was accepted"; }
case $RC in 1 | 2 | 125) ;; *) show >&2; not_contained "exit $RC" ;; esac
# (what the message says is x21_tls_error_message.sh)
! grep -q '^GET /v2/h35' "$WORK/server.log" || { cat "$WORK/server.log" >&2; not_contained "requests got through without a verified certificate"; }
expect_ok pull -q --tls-verify=false "$HREG/h35/img:1"
k rmi -f "$HREG/h35/img:1" >/dev/null 2>&1
run_k images --format '{{.Names}}'
[ ! -s "$WORK/out" ] || { show >&2; not_contained "an image is left"; }
mkdir -p "$WORK/certs"
cp "$WORK/tls/cert.pem" "$WORK/certs/ca.crt"
own "$WORK/certs"
expect_ok pull -q --cert-dir "$WORK/certs" "$HREG/h35/img:1"
k rmi -f "$HREG/h35/img:1" >/dev/null 2>&1
# the certificate is for 127.0.0.1; "localhost" is another name
port=${HREG##*:}
if getent hosts localhost | grep -q '127.0.0.1'; then
  run_k pull -q --cert-dir "$WORK/certs" "localhost:$port/h35/img:1"
  [ "$RC" -ne 0 ] || { show >&2; not_contained "a certificate for 127.0.0.1 was accepted for localhost"; }
fi
prune_check
