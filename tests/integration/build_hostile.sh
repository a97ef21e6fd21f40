#!/usr/bin/env bash
# Build-side items of issue [2.1] through the real CLI, as the unprivileged
# test user and as root (the cases that fit testdata/build live there:
# run-mount-bind-rw, home-from-passwd, copy-chown-overflow,
# ignore-symlink-*, copy-from-short-name):
#   - an ARG doubling chain stops at the line that passes 1 MiB, with bounded
#     memory (docs/security.md H36);
#   - an 8 GiB sparse file: RUN chmod on it takes little time, makes a small
#     layer, and unpacks sparse with the same content (H15);
#   - COPY --chown to an id outside the user namespace is refused by name;
#   - RUN --mount=type=secret,env=VAR without target sets only the variable;
#   - a registry host that does not resolve gets no plain-HTTP hint.
set -u
. "$(dirname "$0")/lib.sh"
SPARSE_CMP="$KILN_SOURCE_ROOT/tests/integration/sparse_cmp.py"

# run_measured MODE STORE ARGS...: kiln ARGS as MODE; the peak RSS (KiB, the
# largest of kiln's processes) and the seconds go to $TIME_OUT.
run_measured() {
  local mode=$1 store=$2; shift 2
  as_mode "$mode" env KILN_ROOT="$store" python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write("%d %.2f\n" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.monotonic() - t))
sys.exit(rc)' "$TIME_OUT" "$KILN_BIN" "$@"
}

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store="$work/store"
  TIME_OUT="$work/time"
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import the busybox base"; continue
  fi
  ctx="$work/ctx"; mkdir -p "$ctx"; echo a > "$ctx/a.txt"
  [ "$(id -u)" -eq 0 ] && [ "$mode" = user ] && chown -R "$KILN_TEST_USER" "$ctx"

  # --- ARG expansion bomb: ~60 KB of `ARG An=${An-1}${An-1}`.
  python3 "$KILN_SOURCE_ROOT/tests/security/mkhostile.py" arg-bomb "$work/bomb"
  chmod 644 "$work/bomb"
  run_measured "$mode" "$store" build --print-graph -f "$work/bomb" "$ctx" >/dev/null 2>"$work/bomb.err"
  rc=$?
  rss=$(tail -1 "$TIME_OUT" | cut -d' ' -f1); secs=$(tail -1 "$TIME_OUT" | cut -d' ' -f2)
  # 16 bytes * 2^16 = 1 MiB is A16 (line 18); A17 on line 19 is the first over.
  if [ "$rc" = 2 ] && grep -q "bomb:19: .*larger than 1 MiB" "$work/bomb.err" && [ "$rss" -lt 204800 ]; then
    tap_ok "$mode ARG doubling chain: exit 2 at line 19, peak RSS ${rss} KiB, ${secs} s"
  else
    tap_not_ok "$mode ARG doubling chain: exit $rc, peak RSS ${rss} KiB"; diag <"$work/bomb.err"
  fi

  # --- Sparse files: 8 GiB apparent, a few bytes of data.
  cat >"$work/Sparse" <<'CF'
FROM busybox
RUN truncate -s 8G /big && printf start | dd of=/big conv=notrunc 2>/dev/null && printf end | dd of=/big bs=1 seek=8589934589 conv=notrunc 2>/dev/null
RUN chmod 600 /big
CF
  chmod 644 "$work/Sparse"
  start=$(date +%s.%N)
  kiln_as "$mode" "$store" build -q -f "$work/Sparse" -t sparse "$ctx" >/dev/null 2>"$work/sparse.err"
  rc=$?
  secs=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")
  ok=1
  if [ $rc -ne 0 ]; then
    tap_not_ok "$mode sparse: build failed with $rc"; diag <"$work/sparse.err"; ok=0
  fi
  if [ $ok = 1 ]; then
    kiln_as "$mode" "$store" save --format oci-archive -o "$work/sparse.tar" sparse 2>"$work/sparse.err" || ok=0
    rm -rf "$work/sx"; mkdir -p "$work/sx"
    tar -xf "$work/sparse.tar" -C "$work/sx" 2>>"$work/sparse.err" || ok=0
    # The last two layers: the 8 GiB file, then its chmod.
    sizes=$(python3 - "$work/sx" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = idx["manifests"][0]["digest"].split(":")[1]
man = json.load(open(d + "/blobs/sha256/" + m))
print(" ".join(str(l["size"]) for l in man["layers"][-2:]))
print(man["layers"][-1]["digest"].split(":")[1])
PY
)
    layer_sizes=$(echo "$sizes" | head -1); last=$(echo "$sizes" | tail -1)
    for s in $layer_sizes; do [ "$s" -lt 65536 ] || ok=0; done
    # Unpack the chmod layer with GNU tar (sparse aware) and compare with a
    # sparse reference, through the data only. (Overlay copy-up, for the
    # chmod, skips holes in 1 MiB chunks: the copy holds up to 1 MiB of
    # zeros around each data block, so "sparse" is "under 8 MiB" here.)
    mkdir -p "$work/sx/l"
    tar -xzf "$work/sx/blobs/sha256/$last" -C "$work/sx/l" 2>>"$work/sparse.err" || ok=0
    truncate -s 8G "$work/ref" && printf start | dd of="$work/ref" conv=notrunc 2>/dev/null &&
      printf end | dd of="$work/ref" bs=1 seek=8589934589 conv=notrunc 2>/dev/null
    blocks=$(python3 "$SPARSE_CMP" --blocks "$work/sx/l/big" 2>/dev/null || echo 0)
    [ "$(stat -c %s "$work/sx/l/big" 2>/dev/null)" = 8589934592 ] || ok=0
    [ "${blocks:-1000000000}" -lt 8388608 ] || { echo "layer's big takes $blocks bytes" >>"$work/sparse.err"; ok=0; }
    [ "$ok" = 1 ] && { python3 "$SPARSE_CMP" "$work/ref" "$work/sx/l/big" 2>>"$work/sparse.err" || ok=0; }
    [ "$(stat -c %a "$work/sx/l/big")" = 600 ] || ok=0
    # kiln's own unpack (a fresh store loads the archive and builds on it):
    # the file is still sparse and has the same content.
    store2="$work/store2"
    cat >"$work/Sparse2" <<'CF'
FROM sparse
RUN du -k /big | cut -f1 > /du && head -c 5 /big > /head && tail -c 3 /big > /tail
CF
    chmod 644 "$work/Sparse2"
    if kiln_as "$mode" "$store2" load -i "$work/sparse.tar" >/dev/null 2>>"$work/sparse.err" &&
      kiln_as "$mode" "$store2" build -q -f "$work/Sparse2" -t sparse2 "$ctx" >/dev/null 2>>"$work/sparse.err" &&
      kiln_as "$mode" "$store2" save --format oci-archive -o "$work/sparse2.tar" sparse2 2>>"$work/sparse.err"; then
      rm -rf "$work/sy"; mkdir -p "$work/sy/l"
      tar -xf "$work/sparse2.tar" -C "$work/sy"
      top=$(python3 -c '
import json, sys
d = sys.argv[1]
m = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")[1]
print(json.load(open(d + "/blobs/sha256/" + m))["layers"][-1]["digest"].split(":")[1])' "$work/sy")
      tar -xzf "$work/sy/blobs/sha256/$top" -C "$work/sy/l" du head tail 2>>"$work/sparse.err"
      du_k=$(cat "$work/sy/l/du" 2>/dev/null)
      [ -n "$du_k" ] && [ "$du_k" -lt 8192 ] || { echo "after kiln's unpack du -k /big = '$du_k'" >>"$work/sparse.err"; ok=0; }
      [ "$(cat "$work/sy/l/head")" = start ] && [ "$(cat "$work/sy/l/tail")" = end ] ||
        { echo "after kiln's unpack: head/tail differ" >>"$work/sparse.err"; ok=0; }
    else
      ok=0
    fi
    # Before packing sparse: 26 s and a 38 MB layer.
    if [ "$ok" = 1 ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 20 else 1)" "$secs"; then
      tap_ok "$mode sparse 8 GiB file: build ${secs} s, layers $layer_sizes bytes, sparse and identical after unpack"
    else
      tap_not_ok "$mode sparse 8 GiB file: build ${secs} s, layers ${layer_sizes:-?} bytes"; diag <"$work/sparse.err"
    fi
  fi

  # --- COPY --chown to an id outside kiln's user namespace (rootless only:
  # as root every id up to 4294967294 is mapped).
  if [ "$mode" = user ]; then
    printf 'FROM busybox\nCOPY --chown=70000:0 a.txt /a.txt\n' >"$work/Chown"; chmod 644 "$work/Chown"
    kiln_as "$mode" "$store" build -q -f "$work/Chown" "$ctx" >/dev/null 2>"$work/chown.err"
    rc=$?
    if [ $rc = 2 ] && grep -q "Chown:2: --chown=70000:0: uid 70000 is not mapped in kiln's user namespace" "$work/chown.err"; then
      tap_ok "$mode COPY --chown=70000 outside the mapping: refused by name"
    else
      tap_not_ok "$mode COPY --chown=70000 outside the mapping: exit $rc"; diag <"$work/chown.err"
    fi
  fi

  # --- A secret as an environment variable only.
  printf 's3cret' >"$work/secret"; chmod 644 "$work/secret"
  cat >"$work/Secret" <<'CF'
FROM busybox
RUN --mount=type=secret,id=x,env=TOKEN sh -c 'test "$TOKEN" = s3cret && test ! -e /run/secrets/x && echo ok > /secret-ok'
CF
  chmod 644 "$work/Secret"
  if kiln_as "$mode" "$store" build -q -f "$work/Secret" --secret "id=x,src=$work/secret" -t secretenv "$ctx" \
      >/dev/null 2>"$work/secret.err"; then
    tap_ok "$mode RUN --mount=type=secret,env=TOKEN without target sets TOKEN only"
  else
    tap_not_ok "$mode RUN --mount=type=secret,env=TOKEN without target"; diag <"$work/secret.err"
  fi

  # --- The plain-HTTP hint only where it applies.
  kiln_as "$mode" "$store" pull nosuch.invalid/x:1 >/dev/null 2>"$work/pull.err"
  rc=$?
  if [ $rc -ne 0 ] && grep -qi "resolve" "$work/pull.err" && ! grep -q "plain HTTP" "$work/pull.err"; then
    tap_ok "$mode pull from a host that does not resolve: no plain-HTTP hint"
  else
    tap_not_ok "$mode pull from a host that does not resolve: exit $rc"; diag <"$work/pull.err"
  fi

  if kiln_as "$mode" "$store" prune --check >"$work/check" 2>&1; then
    tap_ok "$mode store consistent after all of the above"
  else
    tap_not_ok "$mode store consistent after all of the above"; diag <"$work/check"
  fi
  [ -n "${KILN_KEEP:-}" ] || rm -rf "$work"
done
tap_done
