#!/usr/bin/env bash
# ADD from an HTTPS URL (issue [2.11], docs/build.md "ADD from a URL"),
# against a loopback HTTPS server (tests/integration/https_files.py) with a
# CA generated here and given by --cert-dir: the file, its mode (0600) and
# mtime (Last-Modified), --checksum (a wrong one fails before any layer is
# written), the cache (a rebuild of an unchanged file revalidates with a
# conditional GET: 304, no body; a changed file misses), the name from the
# URL path or Content-Disposition (a hostile one refused), redirects (one
# to plain HTTP refused), an unknown CA refused. As the test user and as root.
set -u
. "$(dirname "$0")/lib.sh"

require_tool openssl
temp_workdir build-add-url
export SOURCE_DATE_EPOCH=1700000000

# A CA and a certificate for 127.0.0.1 signed by it.
mkdir -p "$work/ca" "$work/www"
(
  cd "$work/ca" &&
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=kiln-test-ca &&
  openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 &&
  printf 'subjectAltName=IP:127.0.0.1\n' >ext &&
  openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext
) >"$work/openssl.log" 2>&1 || { tap_not_ok "make a CA"; diag <"$work/openssl.log"; tap_done; exit; }
mkdir -p "$work/certs" && cp "$work/ca/ca.crt" "$work/certs/ca.crt" && chmod -R a+rX "$work/certs"
printf 'hello over https\n' >"$work/www/hello.txt"
touch -d '2024-01-02 03:04:05 UTC' "$work/www/hello.txt"
python3 "$(dirname "$0")/https_files.py" "$work/www" "$work/ca/srv.crt" "$work/ca/srv.key" "$work/port" "$work/access.log" \
  2>"$work/server.log" &
REG_PID=$!  # cleanup_workdir kills it
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port" 2>/dev/null)
[ -n "$port" ] || { tap_not_ok "start the HTTPS server"; diag <"$work/server.log"; tap_done; exit; }
U="https://127.0.0.1:$port"
sum=$(sha256sum "$work/www/hello.txt" | cut -d' ' -f1)
hits() { grep -c "^GET /$1 $2\$" "$work/access.log"; }

for mode in $(test_modes); do
  w=$(make_workdir "$mode"); s="$w/store"
  : >"$work/access.log"
  import_busybox "$mode" "$s" "$w" || { tap_not_ok "$mode: import busybox"; continue; }
  as_mode "$mode" mkdir -p "$w/c" "$w/bad" "$w/plain" "$w/named"
  k() { kiln_as "$mode" "$s" build --cert-dir "$work/certs" "$@"; }

  as_mode "$mode" sh -c "printf 'FROM busybox\nADD --checksum=sha256:$sum $U/hello.txt /hello.txt\n' >'$w/c/Containerfile'"
  if k -q -t pinned "$w/c" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none pinned sh -c 'cat /hello.txt; stat -c "%a %u:%g %Y" /hello.txt')" = "$(printf 'hello over https\n600 0:0 1704164645')" ]; then
    tap_ok "$mode: ADD --checksum of an HTTPS URL: the file, mode 600, owner 0:0, mtime from Last-Modified"
  else
    tap_not_ok "$mode: ADD --checksum of an HTTPS URL"; diag <"$w/out"
    kiln_as "$mode" "$s" run --rm --network none pinned stat /hello.txt 2>&1 | diag
  fi

  : >"$work/access.log"
  if k -q -t pinned "$w/c" >/dev/null 2>"$w/out" && [ ! -s "$work/access.log" ]; then
    tap_ok "$mode: a rebuild with the checksum's content in the store makes no request at all"
  else
    tap_not_ok "$mode: a pinned rebuild makes no request"; diag <"$work/access.log"; diag <"$w/out"
  fi

  zeros=0000000000000000000000000000000000000000000000000000000000000000
  as_mode "$mode" sh -c "printf 'FROM busybox\nRUN echo before >/b\nADD --checksum=sha256:$zeros $U/hello.txt /hello.txt\n' >'$w/bad/Containerfile'"
  before=$(as_mode "$mode" find "$s" -path '*/blobs/sha256/*' -type f | wc -l)
  k --progress plain -t bad "$w/bad" >"$w/out" 2>&1; rc=$?
  after=$(as_mode "$mode" find "$s" -path '*/blobs/sha256/*' -type f | wc -l)
  if [ $rc != 0 ] && grep -q "Containerfile:3" "$w/out" && grep -q "$zeros" "$w/out" && grep -q "$sum" "$w/out" &&
     ! kiln_as "$mode" "$s" image exists bad && [ "$after" = "$((before + 1))" ]; then
    tap_ok "$mode: a wrong --checksum fails naming Containerfile:3 and both digests; only the earlier RUN's layer was written"
  else
    tap_not_ok "$mode: a wrong --checksum fails before the ADD's layer (rc=$rc, blobs $before -> $after)"; diag <"$w/out"
  fi

  # Without --checksum (another URL of the file: nothing known of it yet):
  # the content digest is the key; a rebuild revalidates.
  as_mode "$mode" sh -c "printf 'FROM busybox\nADD $U/hello.txt?v=1 /d/\nRUN cat /d/hello.txt\n' >'$w/plain/Containerfile'"
  : >"$work/access.log"
  k -q -t plain "$w/plain" >/dev/null 2>"$w/out"
  k --progress plain -t plain "$w/plain" >"$w/out2" 2>&1
  if [ "$(hits 'hello.txt?v=1' 200)" = 1 ] && [ "$(hits 'hello.txt?v=1' 304)" = 1 ] && grep -q "Using cache" "$w/out2" &&
     ! grep -q "hello over https" "$w/out2"; then
    tap_ok "$mode: a rebuild of an unchanged URL: one conditional GET answered 304 (no body), the steps from the cache"
  else
    tap_not_ok "$mode: a rebuild of an unchanged URL revalidates without the body"; diag <"$work/access.log"; diag <"$w/out2"
  fi
  printf 'changed over https\n' >"$work/www/hello.txt"
  touch -d '2024-02-02 03:04:05 UTC' "$work/www/hello.txt"
  if k --progress plain -t plain "$w/plain" >"$w/out" 2>&1 && grep -q "^changed over https" "$w/out" &&
     [ "$(hits 'hello.txt?v=1' 200)" = 2 ]; then
    tap_ok "$mode: a changed file misses the cache and the RUN after it sees the new content"
  else
    tap_not_ok "$mode: a changed file misses the cache"; diag <"$work/access.log"; diag <"$w/out"
  fi
  printf 'hello over https\n' >"$work/www/hello.txt"
  touch -d '2024-01-02 03:04:05 UTC' "$work/www/hello.txt"

  # Names: URL path into a directory, Content-Disposition, a redirect; a
  # hostile Content-Disposition gives the URL's own name.
  as_mode "$mode" sh -c "printf 'FROM busybox\nADD $U/redirect/hello.txt $U/disposition/hello.txt $U/traversal/hello.txt /n/\n' >'$w/named/Containerfile'"
  if k -q -t named "$w/named" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none named ls /n)" = "$(printf 'hello.txt\nnamed.txt')" ] &&
     [ -z "$(kiln_as "$mode" "$s" run --rm --network none named ls /etc/evil 2>/dev/null)" ]; then
    tap_ok "$mode: names from the URL path (after a redirect) and Content-Disposition; ../../etc/evil is not used"
  else
    tap_not_ok "$mode: file names of ADD URL"; diag <"$w/out"
    kiln_as "$mode" "$s" run --rm --network none named ls -la /n 2>&1 | diag
  fi

  as_mode "$mode" sh -c "printf 'FROM busybox\nADD $U/to-http/hello.txt /x\n' >'$w/bad/Containerfile'"
  if ! k "$w/bad" >"$w/out" 2>&1 && grep -q "HTTPS to plain HTTP" "$w/out"; then
    tap_ok "$mode: a redirect from HTTPS to plain HTTP is refused"
  else
    tap_not_ok "$mode: HTTPS -> HTTP redirect refused"; diag <"$w/out"
  fi
  as_mode "$mode" sh -c "printf 'FROM busybox\nADD $U/hello.txt /x\n' >'$w/bad/Containerfile'"
  if ! kiln_as "$mode" "$s" build --no-cache "$w/bad" >"$w/out" 2>&1 && grep -qi "certificate" "$w/out"; then
    tap_ok "$mode: without --cert-dir the server's CA is not trusted: the build fails naming the certificate"
  else
    tap_not_ok "$mode: unknown CA refused"; diag <"$w/out"
  fi
  as_mode "$mode" sh -c "printf 'FROM busybox\nADD $U/missing.txt /x\n' >'$w/bad/Containerfile'"
  if ! k "$w/bad" >"$w/out" 2>&1 && grep -q "missing.txt" "$w/out" && grep -q "404" "$w/out"; then
    tap_ok "$mode: a 404 fails naming the URL and the status"
  else
    tap_not_ok "$mode: 404 error"; diag <"$w/out"
  fi
  # kiln import URL (podman import URL), through the same HTTP stack.
  cp "$w/busybox.tar" "$work/www/bb-$mode.tar"
  if kiln_as "$mode" "$s" import --cert-dir "$work/certs" "$U/bb-$mode.tar" imported >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none imported echo ok 2>&1)" = ok ] &&
     ! kiln_as "$mode" "$s" import "$U/bb-$mode.tar" imported2 >/dev/null 2>&1; then
    tap_ok "$mode: kiln import https://… (with --cert-dir; refused without the CA)"
  else
    tap_not_ok "$mode: kiln import URL"; diag <"$w/out"
  fi
  # A URL and local sources in one ADD (as BuildKit): the URL's file (0600,
  # not extracted) and the local ones (a tar extracted) in DEST/.
  as_mode "$mode" mkdir -p "$w/mixed"
  as_mode "$mode" sh -c "cd '$w/mixed' && echo local >local.txt && mkdir t && echo intar >t/in && tar cf pack.tar -C t in && rm -r t &&
    printf 'FROM busybox\nADD $U/hello.txt local.txt pack.tar /dst/\n' >Containerfile"
  if k -q -t mixed "$w/mixed" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none mixed sh -c 'cat /dst/hello.txt /dst/local.txt /dst/in; stat -c %a /dst/hello.txt; ls /dst | tr "\n" " "')" = "$(printf 'hello over https\nlocal\nintar\n600\nhello.txt in local.txt ')" ]; then
    tap_ok "$mode: ADD URL local.txt pack.tar /dst/: the URL's file (600) and the local files, the tar extracted"
  else
    tap_not_ok "$mode: ADD of a URL with local sources"; diag <"$w/out"
    kiln_as "$mode" "$s" run --rm --network none mixed ls -la /dst 2>&1 | diag
  fi
  as_mode "$mode" sh -c "echo changed >'$w/mixed/local.txt'"
  if k --progress plain -t mixed "$w/mixed" >"$w/out" 2>&1 && ! grep -q "Using cache" "$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none mixed cat /dst/local.txt)" = changed ]; then
    tap_ok "$mode: a changed local source of a mixed ADD misses the cache"
  else
    tap_not_ok "$mode: mixed ADD cache miss on a local change"; diag <"$w/out"
  fi
  # kiln import - (podman import -): the tarball from stdin.
  if kiln_as "$mode" "$s" import - fromstdin <"$w/busybox.tar" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none fromstdin echo ok 2>&1)" = ok ]; then
    tap_ok "$mode: kiln import - reads the tarball from stdin"
  else
    tap_not_ok "$mode: kiln import -"; diag <"$w/out"
  fi
  k --network none "$w/plain" >"$w/out" 2>&1; rc=$?
  check_refused "$mode: --network none refuses ADD URL (exit 2, naming the line), cached or not" $rc \
    "Containerfile:2: ADD $U/hello.txt?v=1 is not allowed: the build runs with --network none" "$w/out"
  rm -rf "$w"
done
tap_done
