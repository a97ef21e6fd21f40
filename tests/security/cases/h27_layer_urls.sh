#!/bin/bash
# H27: a layer descriptor with `urls` pointing at a listener on loopback (the
# metadata-service trick of CVE-2020-15157): the urls are ignored -- the
# layer comes from the layout or the registry itself -- and the listener never
# sees a connection (so no credentials can reach it).
source "$KILN_SOURCE_ROOT/tests/store/ingest_case_lib.sh"
port=$(free_port)
: >"$WORK/hits"
python3 - "$port" "$WORK/hits" "$WORK/ready" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
open(sys.argv[3], "w").close()
while True:
    c, _ = s.accept()
    data = c.recv(65536)
    with open(sys.argv[2], "ab") as f:
        f.write(b"HIT " + data.split(b"\r\n")[0] + b"\n")
    c.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n")
    c.close()
PY
listener=$!
trap 'kill $listener 2>/dev/null' EXIT
for _ in $(seq 50); do [ -e "$WORK/ready" ] && break; sleep 0.1; done
export URLS_TARGET="http://127.0.0.1:$port/v2/evil/blobs/sha256:$(printf '0%.0s' $(seq 64))"
make_image layout "$WORK/urls" urls
kiln_as "$MODE" "$STORE" pull -q "oci:$WORK/urls" >/dev/null 2>"$WORK/err" || not_contained "pull oci: of a layer with urls failed: $(cat "$WORK/err")"
[ -s "$WORK/hits" ] && not_contained "the urls were fetched: $(cat "$WORK/hits")"
if command -v docker-registry >/dev/null && mkdir -p "$WORK/reg" && start_registry "$WORK/reg"; then
  trap 'kill $listener $REG_PID 2>/dev/null' EXIT
  if ! python3 "$HI" push "$REG" urls_registry >"$WORK/info" 2>"$WORK/err"; then
    echo "note: docker-registry refused the foreign layer with urls; only the layout part ran" >&2
    exit 0
  fi
  # Credentials for the registry (and the listener's host) in an authfile.
  printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$port" "$(printf 'u:secret' | base64)" >"$WORK/auth.json"
  chmod 644 "$WORK/auth.json"
  kiln_as "$MODE" "$STORE" pull -q --authfile "$WORK/auth.json" "$REG/hostile:urls_registry" >/dev/null 2>"$WORK/err" ||
    not_contained "registry pull of a foreign layer with urls failed: $(cat "$WORK/err")"
  [ -s "$WORK/hits" ] && not_contained "the urls were fetched: $(cat "$WORK/hits")"
fi
exit 0
