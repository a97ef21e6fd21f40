#!/usr/bin/env bash
# Remote build cache (issue 6): a build on store A exports its cache to a
# loopback registry (--cache-to); the same build on an empty store B imports
# it (--cache-from) and must run no step at all and give the same image ID.
# As the unprivileged test user and as root.
set -u
. "$(dirname "$0")/lib.sh"

registry_workdir rcache

# A build with file layers, a metadata step, a second stage and COPY --from.
mkdir -p "$work/ctx"
echo "hello from the context" >"$work/ctx/a.txt"
cat >"$work/ctx/Containerfile" <<'CF'
FROM busybox AS builder
RUN echo built > /built && mkdir -p /out && cp /built /out/
FROM busybox
ENV GREETING=hi
COPY a.txt /a.txt
COPY --from=builder /out/built /built
RUN cat /a.txt /built > /both
CMD ["cat", "/both"]
CF
chmod -R a+rX "$work/ctx"

steps_run() { grep -c '"status":"done"' "$1" || true; }
steps_cached() { grep -c '"status":"cached"' "$1" || true; }

for mode in $(test_modes); do
  mw=$(make_workdir "$mode")
  cp "$work/ctx/Containerfile" "$work/ctx/a.txt" "$mw/" && chmod 644 "$mw/Containerfile" "$mw/a.txt"
  # The same base image in every store: `kiln import` stamps the time unless told.
  export SOURCE_DATE_EPOCH=1700000000
  for s in A B C; do
    import_busybox "$mode" "$mw/store$s" "$mw" || tap_not_ok "$mode: import busybox into store $s"
  done
  ref="$REG/$mode/cache:latest"
  if kiln_as "$mode" "$mw/storeA" build --progress=json --cache-to "$ref" -t app "$mw" >"$mw/a.id" 2>"$mw/a.err"; then
    tap_ok "$mode: build on store A exports its cache to $ref ($(steps_run "$mw/a.err") steps ran)"
  else
    tap_not_ok "$mode: build on store A with --cache-to"; diag <"$mw/a.err"; rm -rf "$mw"; continue
  fi
  if kiln_as "$mode" "$mw/storeB" build --progress=json --cache-from "$ref" -t app "$mw" >"$mw/b.id" 2>"$mw/b.err"; then
    ran=$(steps_run "$mw/b.err"); cached=$(steps_cached "$mw/b.err")
    if [ "$ran" = 0 ] && [ "$cached" -ge 4 ]; then
      tap_ok "$mode: empty store B with --cache-from: every step a hit ($cached cached, 0 ran)"
    else
      tap_not_ok "$mode: store B ran $ran steps ($cached cached)"; grep '"status"' "$mw/b.err" | diag
    fi
    if [ "$(cat "$mw/a.id")" = "$(cat "$mw/b.id")" ] && [ -s "$mw/a.id" ]; then
      tap_ok "$mode: same image ID from both stores ($(cut -c1-19 "$mw/b.id"))"
    else
      tap_not_ok "$mode: image IDs differ: A $(cat "$mw/a.id") B $(cat "$mw/b.id")"
    fi
    out=$(kiln_as "$mode" "$mw/storeB" run --rm --network none app 2>&1)
    if [ "$out" = "$(printf 'hello from the context\nbuilt')" ]; then
      tap_ok "$mode: the image built from the remote cache runs (layers unpacked on first use)"
    else
      tap_not_ok "$mode: running the cached image printed: $out"
    fi
  else
    tap_not_ok "$mode: build on store B with --cache-from"; diag <"$mw/b.err"
  fi
  # A cache reference that does not exist yet is a warning, not an error.
  if kiln_as "$mode" "$mw/storeC" build -q --cache-from "$REG/$mode/nothing:here" -t app "$mw" >/dev/null 2>"$mw/c.err" &&
      grep -q "no cache imported" "$mw/c.err"; then
    tap_ok "$mode: a missing --cache-from reference only warns"
  else
    tap_not_ok "$mode: missing --cache-from reference"; diag <"$mw/c.err"
  fi
  # A changed input after the import is a miss: the cache never serves stale results.
  echo "changed" >"$mw/a.txt"
  kiln_as "$mode" "$mw/storeB" build --progress=json -t app "$mw" >/dev/null 2>"$mw/d.err"
  if [ "$(steps_run "$mw/d.err")" = 3 ]; then
    tap_ok "$mode: after changing a.txt exactly the COPY and the two steps after it rerun"
  else
    tap_not_ok "$mode: after changing a.txt $(steps_run "$mw/d.err") steps ran, want 3"; grep '"status"' "$mw/d.err" | diag
  fi
  unset SOURCE_DATE_EPOCH
  [ -n "${KILN_KEEP:-}" ] || rm -rf "$mw"
done
tap_done
