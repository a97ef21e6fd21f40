#!/bin/bash
# kiln in CI (issue [2.10], docs/ci.md): the kiln image (contrib/kiln-image)
# built by kiln, then `kiln build` inside a kiln container made from it --
# once where user namespaces are available (rootless isolation), once where
# they are not (max_user_namespaces=0 in the outer kiln's user namespace, set
# through `kiln unshare`: the limit holds for that namespace and its
# children only, nothing global changes; the inner kiln picks chroot
# isolation with its one-line notice) -- and the image equals the one built
# outside: same layer digests (SOURCE_DATE_EPOCH). The kiln image also
# exports a registry cache (loopback docker-registry) that a fresh store
# outside builds from without running a step. As the test user and as root.
. "$(dirname "$0")/../integration/lib.sh"
require_tool objcopy "binutils: stage.sh strips the binaries"
temp_workdir nested
build_dir=$(cd "$(dirname "$KILN_BIN")/../.." && pwd)
export SOURCE_DATE_EPOCH=1700000000

"$KILN_SOURCE_ROOT/contrib/kiln-image/stage.sh" "$build_dir" "$work/image" 2>"$work/stage.err" ||
  { tap_not_ok "stage the kiln image"; diag <"$work/stage.err"; tap_done; exit; }
chmod -R a+rX "$work/image"
mkdir -p "$work/ctx"
"$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$work/ctx/busybox.tar" >/dev/null
cat >"$work/ctx/Containerfile" <<'CF'
FROM scratch
ADD busybox.tar /
RUN mkdir -p /out && echo nested >/out/a && chown 1:2 /out/a && ln -s a /out/b && rm /bin/vi && chmod 700 /out
RUN test -r /proc/self/status && test -c /dev/null && echo ok >/out/proc
CF
chmod -R a+rX "$work/ctx"

# A loopback registry for the registry-cache round trip (docs/ci.md's jobs).
REG=
command -v docker-registry >/dev/null && { start_registry "$work" || REG=; }

# layers IMAGE: the manifest's layer digests, one line
layers() { k inspect --format '{{json .RootFS.Layers}} {{.Digest}}' "$1" 2>/dev/null; }

for mode in $(test_modes); do
  w=$work/$mode
  mkdir -p "$w/inner-userns" "$w/inner-chroot" "$w/inner-refused" "$w/inner-nocap" "$w/inner-cache" "$w/inner-masked"
  chmod 755 "$w"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$w"
  store=$w/store
  k() { XDG_RUNTIME_DIR= kiln_as "$mode" "$store" "$@"; }

  if k build -q -t kiln-image -f "$KILN_SOURCE_ROOT/contrib/kiln-image/Containerfile" "$work/image" \
      >/dev/null 2>"$w/image.err"; then
    tap_ok "$mode: kiln builds the kiln image"
  else
    tap_not_ok "$mode: kiln builds the kiln image"; diag <"$w/image.err"; continue
  fi
  k run --rm --network none kiln-image version >"$w/version.out" 2>&1
  check "$mode: the kiln image runs kiln (no other runtime dependency)" grep -q "kiln version" "$w/version.out"
  # kiln-ci: the kiln image plus busybox, for CI systems that run a shell script.
  mkdir -p "$w/ci-ctx" && cp /bin/busybox "$w/ci-ctx/" && chmod -R a+rX "$w/ci-ctx"
  k build -q --build-arg KILN_IMAGE=kiln-image -t kiln-ci -f "$KILN_SOURCE_ROOT/contrib/kiln-image/Containerfile.ci" \
    "$w/ci-ctx" >/dev/null 2>"$w/ci.err" || diag <"$w/ci.err"
  out=$(k run --rm --network none kiln-ci sh -c 'for w in $(kiln version); do echo $w; done | head -2 | tr "\n" " "' 2>&1)
  check "$mode: kiln-ci (Containerfile.ci) runs a shell script calling kiln" [ "$out" = "kiln version " ]
  [ "$out" = "kiln version " ] || echo "$out" | diag

  k build -q -t out "$work/ctx" >/dev/null 2>"$w/outside.err" || diag <"$w/outside.err"
  want=$(layers out)
  check "$mode: the build outside has three layers (ADD, RUN, RUN)" [ "$(echo "${want% *}" | tr ',' '\n' | grep -c sha256)" = 3 ]

  # inner KIND [KILN-RUN-PREFIX...]: kiln build in a kiln container, its
  # store in $w/inner-KIND (a bind mount: overlay needs a real file system).
  inner() {
    local kind=$1; shift
    "$@" run --rm --network none --privileged -e SOURCE_DATE_EPOCH \
      -v "$work/ctx:/ctx:ro" -v "$w/inner-$kind:/var/lib/kiln" \
      kiln-image build -t out /ctx >"$w/$kind.out" 2>&1
  }
  if inner userns k; then tap_ok "$mode: kiln build in a kiln container, user namespaces available"
  else tap_not_ok "$mode: kiln build in a kiln container, user namespaces available"; diag <"$w/userns.out"; fi
  check "$mode: ... with rootless isolation (no notice)" bash -c "! grep -q 'isolation chroot' '$w/userns.out'"
  got=$(KILN_ROOT=$w/inner-userns as_mode "$mode" "$KILN_BIN" inspect --format '{{json .RootFS.Layers}} {{.Digest}}' out 2>/dev/null)
  if [ -n "$want" ] && [ "$got" = "$want" ]; then tap_ok "$mode: ... same layer digests and manifest digest (the same image) as outside"
  else tap_not_ok "$mode: ... same layer digests and manifest digest (the same image) as outside"; echo "want $want got $got" | diag; fi

  # Without --privileged the container's /proc is masked: a nested sandbox
  # cannot mount its own, and the error says so and what to do.
  k run --rm --network none -e SOURCE_DATE_EPOCH -v "$work/ctx:/ctx:ro" -v "$w/inner-masked:/var/lib/kiln" \
    kiln-image build -t x /ctx >"$w/masked.out" 2>&1
  check "$mode: nested in a container with a masked /proc: the RUN step fails naming the masked path and the ways out" \
    grep -q "sandbox: mount proc: Operation not permitted (this kiln runs in a container whose /proc has masked paths such as /proc/.*--privileged.*procMount: Unmasked.*--isolation chroot" "$w/masked.out"
  grep -q "masked paths" "$w/masked.out" || diag <"$w/masked.out"

  # The CI flow: the kiln image exports its cache to a registry (its libcurl,
  # CA file and loader are in the image), a fresh store imports it and runs
  # no step.
  if [ -z "$REG" ]; then
    tap_skip "$mode: registry cache from the kiln image (docker-registry is not installed or did not start)"
  else
    k run --rm --network host --privileged -e SOURCE_DATE_EPOCH -v "$work/ctx:/ctx:ro" -v "$w/inner-cache:/var/lib/kiln" \
      kiln-image build --cache-to "$REG/$mode/kiln-cache:ci" -t out /ctx >"$w/cache-to.out" 2>&1
    rc=$?
    XDG_RUNTIME_DIR= kiln_as "$mode" "$w/fresh" build --progress=json --cache-from "$REG/$mode/kiln-cache:ci" -t out \
      "$work/ctx" >/dev/null 2>"$w/cache-from.err"
    ran=$(grep -c '"status":"done"' "$w/cache-from.err"); cached=$(grep -c '"status":"cached"' "$w/cache-from.err")
    if [ "$rc" = 0 ] && [ "$ran" = 0 ] && [ "$cached" = 3 ] &&
       [ "$(KILN_ROOT=$w/fresh as_mode "$mode" "$KILN_BIN" inspect --format '{{json .RootFS.Layers}} {{.Digest}}' out)" = "$want" ]; then
      tap_ok "$mode: --cache-to from the kiln image, --cache-from on a fresh store: 3 steps cached, 0 ran, the same image"
    else
      tap_not_ok "$mode: registry cache from the kiln image (rc $rc, $ran ran, $cached cached)"
      diag <"$w/cache-to.out"; diag <"$w/cache-from.err"
    fi
  fi

  # User namespaces disabled: max_user_namespaces=0 in the outer kiln's user
  # namespace (through `kiln unshare`; it limits that namespace and its
  # children only), then the kiln containers run in it.
  k unshare env w="$w" work="$work" KILN_BIN="$KILN_BIN" bash -c '
    run_img() { "$KILN_BIN" run --rm --network none -e SOURCE_DATE_EPOCH -v "$work/ctx:/ctx:ro" "$@"; }
    echo 0 >/proc/sys/user/max_user_namespaces || exit 99
    run_img --privileged kiln-image info >"$w/info.txt" 2>&1
    run_img --privileged kiln-image info --format json >"$w/info.json" 2>"$w/info.err"
    run_img --privileged -v "$w/inner-refused:/var/lib/kiln" kiln-image build --isolation rootless -t x /ctx >"$w/refused.out" 2>&1
    echo $? >"$w/refused.rc"
    run_img -v "$w/inner-nocap:/var/lib/kiln" kiln-image build -t x /ctx >"$w/nocap.out" 2>&1
    echo $? >"$w/nocap.rc"
    run_img --privileged -v "$w/inner-chroot:/var/lib/kiln" kiln-image build -t out /ctx >"$w/chroot.out" 2>&1
    echo $? >"$w/chroot.rc"' 2>"$w/unshare.err"
  rc=$?
  check "$mode: max_user_namespaces=0 in kiln unshare (rc $rc)" [ "$rc" = 0 ]
  [ "$rc" = 0 ] || diag <"$w/unshare.err"
  check "$mode: kiln info in the container says why user namespaces are unavailable" \
    grep -qx "  user namespaces: unavailable (max_user_namespaces=0)" "$w/info.txt"
  check "$mode: ... and, as json, that builds default to chroot isolation" python3 -c "
import json, sys
i = json.load(open(sys.argv[1]))['isolation']
sys.exit(not (i['default'] == 'chroot' and i['allowed'] == ['chroot'] and not i['user_namespaces']['available']))" "$w/info.json"
  check "$mode: --isolation rootless without user namespaces is refused, naming why" \
    bash -c "[ \"\$(cat '$w/refused.rc')\" != 0 ] && grep -q 'isolation rootless needs user namespaces, which are unavailable here (max_user_namespaces=0)' '$w/refused.out'"
  check "$mode: chroot isolation without CAP_SYS_ADMIN fails closed before the build in one line, naming why and the capability" \
    bash -c "[ \"\$(cat '$w/nocap.rc')\" != 0 ] && grep -q '^kiln: error: user namespaces are unavailable (max_user_namespaces=0) and chroot isolation cannot build here: missing capability CAP_SYS_ADMIN' '$w/nocap.out' && ! grep -q notice '$w/nocap.out'"
  grep -q 'missing capability CAP_SYS_ADMIN' "$w/nocap.out" || diag <"$w/nocap.out"
  if [ "$(cat "$w/chroot.rc" 2>/dev/null)" = 0 ]; then
    tap_ok "$mode: kiln build in a kiln container, user namespaces disabled"
  else tap_not_ok "$mode: kiln build in a kiln container, user namespaces disabled"; diag <"$w/chroot.out"; fi
  check "$mode: ... chooses chroot isolation with a one-line notice" \
    grep -qx "kiln: notice: user namespaces are unavailable (max_user_namespaces=0): building with --isolation chroot (docs/ci.md)" "$w/chroot.out"
  got=$(KILN_ROOT=$w/inner-chroot as_mode "$mode" "$KILN_BIN" inspect --format '{{json .RootFS.Layers}} {{.Digest}}' out 2>/dev/null)
  if [ -n "$want" ] && [ "$got" = "$want" ]; then tap_ok "$mode: ... same layer digests and manifest digest (the same image) as outside"
  else tap_not_ok "$mode: ... same layer digests and manifest digest (the same image) as outside"; echo "want $want got $got" | diag; fi

  # Outside any container: an unknown value is a usage error; as root,
  # --isolation chroot builds the same image.
  BUILDAH_ISOLATION=bogus k build -q -t y "$work/ctx" >/dev/null 2>"$w/bogus.err"
  check_refused "$mode: \$BUILDAH_ISOLATION=bogus is refused" $? 'BUILDAH_ISOLATION=bogus: want oci, rootless or chroot' "$w/bogus.err"
  if [ "$mode" = root ]; then
    k build -q --no-cache --isolation chroot -t out-chroot "$work/ctx" >/dev/null 2>"$w/host-chroot.err" || diag <"$w/host-chroot.err"
    check "root: --isolation chroot on the host, the same image" [ "$(layers out-chroot)" = "$want" ]
  else
    k build -q --isolation chroot -t y "$work/ctx" >/dev/null 2>"$w/user-chroot.err"
    check "user: --isolation chroot as a non-root user fails closed" grep -q "chroot isolation needs root" "$w/user-chroot.err"
  fi
done
tap_done
