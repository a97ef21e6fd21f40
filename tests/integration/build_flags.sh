#!/usr/bin/env bash
# kiln build's flags for RUN steps' sandbox and for the image's layers
# (issue [2.11], docs/build.md): --cap-add/--cap-drop (CapEff inside RUN),
# --ulimit (`ulimit -n`), --add-host (/etc/hosts of RUN, not in the image),
# --shm-size (/dev/shm), --security-opt no-new-privileges, their effect on
# the cache key, --squash / --squash-all (layer counts and content), and the
# exit-2 errors of values kiln cannot honour. As the test user and as root.
set -u
. "$(dirname "$0")/lib.sh"

temp_workdir build-flags
export SOURCE_DATE_EPOCH=1700000000

layers() {  # MODE STORE IMAGE: number of layers
  kiln_as "$1" "$2" inspect --format '{{json .RootFS.Layers}}' "$3" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

for mode in $(test_modes); do
  w=$(make_workdir "$mode"); s="$w/store"
  import_busybox "$mode" "$s" "$w" || { tap_not_ok "$mode: import busybox"; continue; }
  as_mode "$mode" mkdir -p "$w/c"
  as_mode "$mode" sh -c "printf 'FROM busybox\nRUN grep -E \"^(CapEff|NoNewPrivs)\" /proc/self/status; echo nofile=\$(ulimit -n); grep -c . /etc/hosts; grep flags.test /etc/hosts || true; df -k /dev/shm | tail -1\n' >'$w/c/Containerfile'"

  # Docker's default set is 0x a80425fb; NET_ADMIN is bit 12, CHOWN bit 0.
  kiln_as "$mode" "$s" build --progress plain -t plain "$w/c" >"$w/out0" 2>&1
  if kiln_as "$mode" "$s" build --progress plain --cap-add NET_ADMIN --cap-drop chown,CAP_KILL -t caps "$w/c" >"$w/out" 2>&1 &&
     grep -q "CapEff:.*00000000a80435da" "$w/out" && grep -q "CapEff:.*00000000a80425fb" "$w/out0"; then
    tap_ok "$mode: --cap-add NET_ADMIN --cap-drop chown,CAP_KILL change CapEff inside RUN (a80425fb -> a80435da)"
  else
    tap_not_ok "$mode: --cap-add/--cap-drop in CapEff inside RUN"; diag <"$w/out0"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$s" build --progress plain --cap-drop ALL -t caps "$w/c" >"$w/out" 2>&1 &&
     grep -q "CapEff:.*0000000000000000" "$w/out" && ! grep -q "Using cache" "$w/out"; then
    tap_ok "$mode: --cap-drop ALL leaves no capability, and the changed set misses the cache"
  else
    tap_not_ok "$mode: --cap-drop ALL"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$s" build --progress plain --ulimit nofile=512:1024 "$w/c" >"$w/out" 2>&1 &&
     grep -q "^nofile=512$" "$w/out" && ! grep -q "Using cache" "$w/out"; then
    tap_ok "$mode: --ulimit nofile=512:1024 is ulimit -n inside RUN (and a cache miss)"
  else
    tap_not_ok "$mode: --ulimit nofile=512:1024 inside RUN"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$s" build --progress plain --add-host flags.test:10.1.2.3 --add-host 'a.test;b.test:fd00::1' -t hosts "$w/c" >"$w/out" 2>&1 &&
     grep -q "^10.1.2.3.flags.test$" "$w/out" &&
     [ -z "$(kiln_as "$mode" "$s" run --rm --network none hosts grep -l flags.test /etc/hosts 2>/dev/null)" ]; then
    tap_ok "$mode: --add-host is in /etc/hosts of RUN and not in the image"
  else
    tap_not_ok "$mode: --add-host in /etc/hosts of RUN"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$s" build --progress plain --shm-size 16m --security-opt no-new-privileges "$w/c" >"$w/out" 2>&1 &&
     grep -Eq "^shm +16384 " "$w/out" && grep -q "NoNewPrivs:.*1" "$w/out" && grep -q "NoNewPrivs:.*0" "$w/out0"; then
    tap_ok "$mode: --shm-size 16m sizes /dev/shm, --security-opt no-new-privileges sets NoNewPrivs"
  else
    tap_not_ok "$mode: --shm-size / no-new-privileges"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$s" build --progress plain -t plain "$w/c" >"$w/out" 2>&1 && grep -q "Using cache" "$w/out"; then
    tap_ok "$mode: without the flags the first build's step is a cache hit again (flags only key what they change)"
  else
    tap_not_ok "$mode: a plain rebuild hits the cache"; diag <"$w/out"
  fi

  bad=0
  for args in "--cap-add NO_SUCH_CAP" "--cap-add NET_ADMIN --cap-drop NET_ADMIN" "--ulimit nofile=2:1" "--ulimit bogus=1" \
      "--add-host nohost" "--add-host h:999.1.1.1" "--shm-size 0" "--shm-size 12q" "--device /etc/passwd" \
      "--security-opt seccomp=/tmp/profile.json" "--userns private" "--squash --squash-all"; do
    kiln_as "$mode" "$s" build $args "$w/c" >"$w/out" 2>&1; rc=$?
    if [ $rc != 2 ] || [ "$(wc -l <"$w/out")" != 1 ]; then bad=1; echo "$args: rc=$rc" | diag; diag <"$w/out"; fi
  done
  [ $bad = 0 ] && tap_ok "$mode: 12 values kiln cannot honour fail with exit 2 and one line" ||
    tap_not_ok "$mode: bad sandbox flag values fail with exit 2"

  # --squash / --squash-all: busybox has 1 layer; 3 RUN layers on top, one
  # of them deleting a file of the base and one deleting a file of a layer
  # before it.
  as_mode "$mode" mkdir -p "$w/sq"
  as_mode "$mode" sh -c "printf 'FROM busybox\nRUN mkdir /d && echo 1 >/d/a && echo x >/d/gone\nRUN echo 2 >/d/b && rm /d/gone && rm /bin/vi\nENV E=1\nRUN echo 3 >/d/a\n' >'$w/sq/Containerfile'"
  check_squash() {  # NAME EXPECTED_LAYERS
    [ "$(layers "$mode" "$s" "$1")" = "$2" ] &&
      [ "$(kiln_as "$mode" "$s" run --rm --network none "$1" sh -c 'cat /d/a /d/b; test -e /d/gone && echo gone-there; test -e /bin/vi && echo vi-there; test -e /bin/ls && echo ls; echo $E' 2>&1)" = "$(printf '3\n2\nls\n1')" ]
  }
  if kiln_as "$mode" "$s" build -q -t nosq "$w/sq" >/dev/null 2>"$w/out" && check_squash nosq 4 &&
     kiln_as "$mode" "$s" build -q --squash -t sq "$w/sq" >/dev/null 2>"$w/out" && check_squash sq 2; then
    tap_ok "$mode: --squash: base layer + one layer (4 -> 2), same files, deletions of base and new files kept"
  else
    tap_not_ok "$mode: --squash layer count and content"; diag <"$w/out"
    kiln_as "$mode" "$s" run --rm --network none sq sh -c 'ls -la /d; ls /bin/vi' 2>&1 | diag
  fi
  if kiln_as "$mode" "$s" build -q --squash-all -t sqall "$w/sq" >/dev/null 2>"$w/out" && check_squash sqall 1 &&
     [ "$(kiln_as "$mode" "$s" inspect --format '{{len .History}}' sqall)" = 1 ]; then
    tap_ok "$mode: --squash-all: one layer with one history entry, same files"
  else
    tap_not_ok "$mode: --squash-all layer count and content"; diag <"$w/out"
  fi

  # FROM a named build context: a directory (its ignore file applies) and docker-image://.
  as_mode "$mode" mkdir -p "$w/ctx/sub" "$w/fc"
  as_mode "$mode" sh -c "echo from-context >'$w/ctx/sub/f'; echo no >'$w/ctx/ignored'; echo ignored >'$w/ctx/.dockerignore'"
  as_mode "$mode" sh -c "printf 'FROM mc\nCOPY --from=bb /bin/busybox /bin/sh\nRUN [\"/bin/sh\", \"-c\", \"read l </sub/f; echo \$l-run >/out\"]\n' >'$w/fc/Containerfile'"
  if kiln_as "$mode" "$s" build -q --build-context mc="$w/ctx" --build-context bb=docker-image://busybox -t fromctx "$w/fc" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none fromctx /bin/sh -c 'read l </out; echo $l; test -e /ignored || echo not-ignored' 2>&1)" = "$(printf 'from-context-run\nnot-ignored')" ] &&
     [ "$(layers "$mode" "$s" fromctx)" = 3 ] &&
     kiln_as "$mode" "$s" build --progress plain --build-context mc="$w/ctx" --build-context bb=docker-image://busybox "$w/fc" 2>&1 | grep -q "Using cache"; then
    tap_ok "$mode: FROM a --build-context directory (ignore file applied) with COPY --from a docker-image:// context; rebuilt from the cache"
  else
    tap_not_ok "$mode: FROM a named build context"; diag <"$w/out"
  fi

  # The image's config: --env K takes kiln's environment's value; RUN steps are cached across --env values.
  as_mode "$mode" mkdir -p "$w/envc"
  as_mode "$mode" sh -c "printf 'FROM busybox\nRUN echo step-ran\n' >'$w/envc/Containerfile'"
  kiln_as "$mode" "$s" build -q -t env0 "$w/envc" >/dev/null 2>&1
  if as_mode "$mode" env KILN_ROOT="$s" LIFE_FROM_ENV=v1 "$KILN_BIN" build --progress plain --env LIFE_FROM_ENV --env B=2 \
       --unsetenv PATH -t env1 "$w/envc" >"$w/out" 2>&1 && grep -q "Using cache" "$w/out" &&
     [ "$(kiln_as "$mode" "$s" inspect --format '{{json .Config.Env}}' env1)" = '["LIFE_FROM_ENV=v1","B=2"]' ]; then
    tap_ok "$mode: --env K (from the environment), --env K=V, --unsetenv in the image's Env; the RUN step came from the cache"
  else
    tap_not_ok "$mode: --env/--unsetenv"; diag <"$w/out"; kiln_as "$mode" "$s" inspect --format '{{json .Config.Env}}' env1 2>&1 | diag
  fi
  kiln_as "$mode" "$s" build --env LIFE_SURELY_UNSET_9 "$w/envc" >"$w/out" 2>&1; rc=$?
  check "$mode: --env NAME unset in the environment: exit 2 naming it ($rc)" \
    bash -c "[ $rc = 2 ] && grep -q 'LIFE_SURELY_UNSET_9: not set in the environment' '$w/out'"
  # --dns none: RUN reads the image's own resolv.conf; other --dns values miss the cache
  as_mode "$mode" mkdir -p "$w/dnsc"
  as_mode "$mode" sh -c "printf 'nameserver 192.0.2.53\n' >'$w/dnsc/resolv'; printf 'FROM busybox\nCOPY resolv /etc/resolv.conf\nRUN cat /etc/resolv.conf\n' >'$w/dnsc/Containerfile'"
  if kiln_as "$mode" "$s" build --progress plain --dns none "$w/dnsc" >"$w/out" 2>&1 && grep -q "nameserver 192.0.2.53" "$w/out" &&
     kiln_as "$mode" "$s" build --progress plain --dns 192.0.2.99 "$w/dnsc" >"$w/out2" 2>&1 &&
     grep -q "nameserver 192.0.2.99" "$w/out2" && ! grep -q "192.0.2.53" "$w/out2"; then
    tap_ok "$mode: --dns none keeps the image's resolv.conf in RUN; --dns IP replaces the nameservers (the step ran again: a cache miss)"
  else
    tap_not_ok "$mode: --dns none / --dns IP in RUN"; diag <"$w/out"; diag <"$w/out2"
  fi

  # -v HOST:CTR[:ro] for RUN: reads and writes reach the host dir, the mount point is in no layer
  as_mode "$mode" mkdir -p "$w/volc" "$w/hostvol"
  as_mode "$mode" sh -c "echo from-host >'$w/hostvol/data'; printf 'FROM busybox\nRUN cat /mnt/hv/data >/seen; echo from-run >/mnt/hv/written\n' >'$w/volc/Containerfile'"
  if kiln_as "$mode" "$s" build -q -v "$w/hostvol:/mnt/hv" -t vol1 "$w/volc" >/dev/null 2>"$w/out" &&
     [ "$(cat "$w/hostvol/written" 2>/dev/null)" = from-run ] &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none vol1 sh -c 'cat /seen; test -e /mnt/hv && echo stub-left || echo no-stub' 2>&1)" = "$(printf 'from-host\nno-stub')" ]; then
    tap_ok "$mode: -v HOST:/PATH: RUN reads the host's file and writes back to it; no mount point in the image"
  else
    tap_not_ok "$mode: -v for RUN"; diag <"$w/out"
  fi
  kiln_as "$mode" "$s" build -q --no-cache -v "$w/hostvol:/mnt/hv:ro" "$w/volc" >/dev/null 2>"$w/out"; rc=$?
  check "$mode: -v ...:ro: the RUN step's write fails ($rc)" bash -c "[ $rc -ne 0 ] && grep -q 'Read-only file system' '$w/out'"
  bad=0
  for args in "-v /nonexistent-life:/x" "-v $w/hostvol:rel" "-v $w/hostvol:/x:O" "--retry 101" "--retry-delay soon"; do
    # shellcheck disable=SC2086
    kiln_as "$mode" "$s" build $args "$w/volc" >"$w/out" 2>&1; rc=$?
    if [ $rc != 2 ] || [ "$(wc -l <"$w/out")" != 1 ]; then bad=1; echo "$args: rc=$rc" | diag; diag <"$w/out"; fi
  done
  [ $bad = 0 ] && tap_ok "$mode: bad -v, --retry and --retry-delay values fail with exit 2 and one line" ||
    tap_not_ok "$mode: bad -v/--retry values"

  # --retry N: a registry that answers 503 gets N+1 requests for the manifest
  port=$(free_port)
  python3 - "$port" "$w/hits" >/dev/null 2>&1 <<'PY' &
import http.server, sys
port, hits = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if "/manifests/" in self.path:
            open(hits, "a").write(self.path + "\n")
        self.send_response(200 if self.path == "/v2/" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_HEAD = do_GET
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
  srv=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  as_mode "$mode" sh -c "printf 'FROM 127.0.0.1:$port/life/none:1\n' >'$w/volc/Containerfile.r'"
  rm -f "$w/hits"
  kiln_as "$mode" "$s" build -q --tls-verify=false --retry 2 --retry-delay 50ms -f "$w/volc/Containerfile.r" "$w/volc" >/dev/null 2>"$w/out"; rc=$?
  n=$(wc -l <"$w/hits" 2>/dev/null || echo 0)
  check "$mode: --retry 2 --retry-delay 50ms: 3 requests to a registry that answers 503, then exit $rc ($n)" \
    bash -c "[ $rc -ne 0 ] && [ $n -eq 3 ]"
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null

  # --build-context NAME=oci-layout://PATH[:TAG|@DIGEST]: FROM and COPY --from an OCI layout
  as_mode "$mode" mkdir -p "$w/laysrc" "$w/layc"
  as_mode "$mode" sh -c "printf 'FROM busybox\nRUN echo in-layout >/marker\n' >'$w/laysrc/Containerfile'"
  kiln_as "$mode" "$s" build -q -t laysrc "$w/laysrc" >/dev/null 2>"$w/out" &&
    kiln_as "$mode" "$s" push laysrc "oci:$w/layout:v1" >/dev/null 2>>"$w/out" && kiln_as "$mode" "$s" rmi laysrc >/dev/null 2>>"$w/out" ||
    diag <"$w/out"
  as_mode "$mode" sh -c "printf 'FROM lay\nCOPY --from=lay2 /marker /copied\nRUN cat /marker /copied >/got\n' >'$w/layc/Containerfile'"
  digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$w/layout/index.json" 2>/dev/null)
  if kiln_as "$mode" "$s" build -q -t fromlay --build-context lay="oci-layout://$w/layout:v1" \
       --build-context lay2="oci-layout://$w/layout@$digest" "$w/layc" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none fromlay cat /got 2>&1)" = "$(printf 'in-layout\nin-layout')" ] &&
     ! kiln_as "$mode" "$s" images 2>&1 | grep -qw -e oci-layout -e v1; then
    tap_ok "$mode: FROM an oci-layout://PATH:TAG context and COPY --from an oci-layout://PATH@DIGEST one (no image named after them)"
  else
    tap_not_ok "$mode: --build-context oci-layout://"; diag <"$w/out"
  fi
  kiln_as "$mode" "$s" build --build-context lay="oci-layout://$w/nolayout" "$w/layc" >"$w/out" 2>&1; rc=$?
  check "$mode: oci-layout:// of a directory without index.json: exit 2 naming it ($rc)" \
    bash -c "[ $rc = 2 ] && grep -q 'is not an OCI layout' '$w/out'"
  kiln_as "$mode" "$s" build --build-context lay="oci-layout://$w/layout:nosuchtag" "$w/layc" >"$w/out" 2>&1; rc=$?
  check "$mode: oci-layout:// with a tag the layout lacks fails naming it ($rc)" \
    bash -c "[ $rc != 0 ] && grep -q 'nosuchtag' '$w/out'"

  # --manifest NAME: the image joins the list (made when missing); a rebuild replaces its platform's entry
  entries() { kiln_as "$mode" "$s" manifest inspect "$1" | python3 -c 'import json,sys; print(" ".join(m["digest"] + "/" + m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in json.load(sys.stdin)["manifests"]))'; }
  mdig() { kiln_as "$mode" "$s" inspect --format '{{.Digest}}' "$1"; }
  arch=$(kiln_as "$mode" "$s" inspect --format '{{.Architecture}}' busybox)
  if kiln_as "$mode" "$s" build -q -t m1 --manifest life/list:1 "$w/envc" >/dev/null 2>"$w/out" &&
     [ "$(entries life/list:1)" = "$(mdig m1)/linux/$arch" ] &&
     kiln_as "$mode" "$s" build -q -t m2 --manifest life/list:1 "$w/laysrc" >/dev/null 2>>"$w/out" &&
     [ "$(entries life/list:1)" = "$(mdig m2)/linux/$arch" ]; then
    tap_ok "$mode: --manifest NAME makes the list with the image; a second build replaces the entry of its platform"
  else
    tap_not_ok "$mode: --manifest"; diag <"$w/out"; entries life/list:1 2>&1 | diag; echo "m1 $(mdig m1) m2 $(mdig m2)" | diag
  fi
  kiln_as "$mode" "$s" build -q --manifest m1 "$w/envc" >"$w/out" 2>&1; rc=$?
  check "$mode: --manifest naming an image that is no list: exit 2 ($rc)" \
    bash -c "[ $rc = 2 ] && grep -q 'is an image, not a manifest list' '$w/out'"

  # --build-context NAME=http://…/x.tar.gz: a tarball served on loopback, for COPY --from and FROM
  mkdir -p "$w/srv" "$w/tarsrc/sub"
  as_mode "$mode" mkdir -p "$w/urlc"
  echo from-url >"$w/tarsrc/sub/data.txt"
  tar -czf "$w/srv/ctx.tar.gz" -C "$w/tarsrc" . && chmod -R a+rX "$w/srv"
  as_mode "$mode" sh -c "printf 'FROM busybox\nCOPY --from=web /sub/data.txt /from-url\n' >'$w/urlc/Containerfile'"
  if serve_dir "$w/srv" ctx.tar.gz &&
     kiln_as "$mode" "$s" build -q -t fromurl --build-context web="http://127.0.0.1:$port/ctx.tar.gz" "$w/urlc" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none fromurl cat /from-url 2>&1)" = from-url ]; then
    tap_ok "$mode: COPY --from a --build-context http://…/ctx.tar.gz (downloaded, unpacked)"
  else
    tap_not_ok "$mode: --build-context URL of a tarball"; diag <"$w/out"
  fi
  # The main context as the URL of a tarball (docker build URL, podman build URL): its Containerfile.
  mkdir -p "$w/mainsrc"
  printf 'FROM busybox\nCOPY data.txt /from-main-url\n' >"$w/mainsrc/Containerfile"; echo main-url >"$w/mainsrc/data.txt"
  tar -czf "$w/srv/main.tar.gz" -C "$w/mainsrc" . && chmod a+r "$w/srv/main.tar.gz"
  if kiln_as "$mode" "$s" build -q -t mainurl "http://127.0.0.1:$port/main.tar.gz" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$s" run --rm --network none mainurl cat /from-main-url 2>&1)" = main-url ] &&
     [ -z "$(find /var/tmp -maxdepth 1 -name 'kiln-url-context-*' -user "$(as_mode "$mode" id -u)" 2>/dev/null)" ]; then
    tap_ok "$mode: kiln build http://…/main.tar.gz: the tarball is the context (its Containerfile); nothing left in /var/tmp"
  else
    tap_not_ok "$mode: a tarball URL as the main context"; diag <"$w/out"
  fi
  kiln_as "$mode" "$s" build -q --build-context web="http://127.0.0.1:$port/missing.tar" "$w/urlc" >"$w/out" 2>&1; rc=$?
  check "$mode: a URL context that is not there fails naming it ($rc: $(head -c 200 "$w/out"))" \
    bash -c "[ $rc != 0 ] && grep -q 'missing.tar' '$w/out'"
  kiln_as "$mode" "$s" build -q --build-context web=https://127.0.0.1:1/r.git "$w/urlc" >"$w/out" 2>&1; rc=$?
  check "$mode: a git URL as a context that cannot be reached fails naming it ($rc)" \
    bash -c "[ $rc != 0 ] && grep -q -- '--build-context web=https://127.0.0.1:1/r.git' '$w/out'"
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
  rm -rf "$w"
done
tap_done
