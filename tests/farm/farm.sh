#!/usr/bin/env bash
# kiln farm with the SSH driver (issue [2.10] item 3, docs/farm.md): two nodes
# on loopback -- separate users (kiln-farm-a, kiln-farm-b) with their own
# stores, reached through a test sshd -- and a loopback docker-registry.
# `farm build --platforms linux/amd64,linux/arm64` sends amd64 to one node
# (native) and arm64 to the other (qemu-user through binfmt_misc), each node
# pushes by digest, and the index kiln pushes holds exactly the digests the
# nodes reported; a second build from fresh node stores comes from the
# registry cache; killing one node's build fails the whole build and pushes
# no index. The local kiln runs as the test user and as root.
set -u
. "$(dirname "$0")/../integration/lib.sh"

SSHD=/usr/sbin/sshd
if [ "$(id -u)" -ne 0 ]; then
  tap_skip "the farm test starts sshd and makes node users: run it as root"; tap_done; exit
fi
for tool in "$SSHD" ssh ssh-keygen docker-registry skopeo jq; do
  command -v "$tool" >/dev/null || { tap_skip "$tool is needed (Debian packages openssh-server, openssh-client, docker-registry, skopeo, jq)"; tap_done; exit; }
done
if [ "$(dpkg --print-architecture 2>/dev/null)" != amd64 ] || ! ensure_arm64_handler; then
  tap_skip "this test expects an amd64 host with qemu-aarch64 in binfmt_misc (qemu-user-static)"; tap_done; exit
fi

temp_workdir farm
start_registry "$work" || { tap_not_ok "start docker-registry"; diag <"$work/registry.log"; tap_done; exit; }
SSHD_PID=
cleanup_farm() {
  [ "$BASHPID" = "$$" ] || return 0
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null
  cleanup_workdir
}
trap cleanup_farm EXIT

# The node users, each with its own subordinate id range (as a user of a
# real build machine) and its own store under its home.
next_range() { awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' /etc/subuid /etc/subgid; }
for u in kiln-farm-a kiln-farm-b; do
  id "$u" >/dev/null 2>&1 || useradd -m -s /bin/sh "$u" || { tap_not_ok "useradd $u"; tap_done; exit; }
  # No password, but not locked: sshd (without PAM) refuses a locked account's keys.
  usermod -p '*' "$u"
  if ! grep -q "^$u:" /etc/subuid || ! grep -q "^$u:" /etc/subgid; then
    start=$(next_range)
    grep -q "^$u:" /etc/subuid || echo "$u:$start:65536" >>/etc/subuid
    grep -q "^$u:" /etc/subgid || echo "$u:$start:65536" >>/etc/subgid
  fi
done
home_of() { getent passwd "$1" | cut -d: -f6; }
wipe_node() {  # a fresh store and context cache on node user $1
  local h; h=$(home_of "$1")
  runuser -u "$1" -- env HOME="$h" "$KILN_BIN" prune -a -f >/dev/null 2>&1
  rm -rf "$h/.local/share/kiln" "$h/.cache/kiln-farm"
}
for u in kiln-farm-a kiln-farm-b; do wipe_node "$u"; done

# sshd on a free loopback port: its own host key, keys from $work/keys/%u.
mkdir -p "$work/sshd" "$work/keys" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd/host_key" || { tap_not_ok "ssh-keygen"; tap_done; exit; }
SSH_PORT=$(free_port)
cat >"$work/sshd/config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $work/sshd/host_key
PidFile $work/sshd/pid
AuthorizedKeysFile $work/keys/%u
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers kiln-farm-a kiln-farm-b
LogLevel ERROR
EOF
"$SSHD" -D -e -f "$work/sshd/config" 2>"$work/sshd/log" &
SSHD_PID=$!
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$work/sshd/host_key.pub")" >"$work/known_hosts"
chmod 644 "$work/known_hosts"
up=
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SSH_PORT") 2>/dev/null && { up=1; break; }; sleep 0.1; done
[ -n "$up" ] && tap_ok "sshd on 127.0.0.1:$SSH_PORT for the nodes kiln-farm-a and kiln-farm-b" ||
  { tap_not_ok "sshd did not start"; diag <"$work/sshd/log"; tap_done; exit; }
NODE_A=ssh://kiln-farm-a@127.0.0.1:$SSH_PORT
NODE_B=ssh://kiln-farm-b@127.0.0.1:$SSH_PORT

# The multi-arch base, pushed to the registry the nodes pull from.
"$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" "$work/bb-amd64.tar" >/dev/null &&
  "$KILN_SOURCE_ROOT/scripts/make-busybox-rootfs.sh" --arch arm64 "$work/bb-arm64.tar" >/dev/null 2>"$work/bb.err" ||
  { tap_skip "Debian's busybox-static:arm64 cannot be obtained: $(cat "$work/bb.err" 2>/dev/null)"; tap_done; exit; }
base_store=$work/base-store
kb() { KILN_ROOT=$base_store "$KILN_BIN" "$@"; }
if kb import --platform linux/amd64 "$work/bb-amd64.tar" bb-amd64 >/dev/null &&
   kb import --platform linux/arm64 "$work/bb-arm64.tar" bb-arm64 >/dev/null &&
   kb manifest create bb bb-amd64 bb-arm64 >/dev/null &&
   kb manifest push -q --tls-verify=false bb "docker://$REG/base/busybox:1" 2>"$work/base.err"; then
  tap_ok "the two-platform busybox base is in the registry ($REG/base/busybox:1)"
else
  tap_not_ok "push the base"; diag <"$work/base.err"; tap_done; exit
fi

mkdir -p "$work/ctx" "$work/ctx-slow"
cat >"$work/ctx/Containerfile" <<EOF
FROM $REG/base/busybox:1
COPY msg /msg
RUN uname -m > /arch && cat /msg >> /arch
CMD ["cat", "/arch"]
EOF
echo "from the farm" >"$work/ctx/msg"
cat >"$work/ctx-slow/Containerfile" <<EOF
FROM $REG/base/busybox:1
RUN if [ "\$(uname -m)" = aarch64 ]; then touch /started; sleep 300; fi; uname -m > /arch
EOF
chmod -R a+rX "$work/ctx" "$work/ctx-slow"

# index_of REF: "linux/amd64=sha256:... linux/arm64=sha256:..." from the registry.
index_of() {
  skopeo inspect --raw --tls-verify=false "docker://$1" 2>/dev/null |
    jq -r '[.manifests[] | "\(.platform.os)/\(.platform.architecture)=\(.digest)"] | sort | join(" ")'
}
# reported FILE: the same from the farm's "PLATFORM: DIGEST (NODE)" lines.
reported() { sed -n 's/^\(linux\/[a-z0-9]*\): \(sha256:[0-9a-f]*\) (.*$/\1=\2/p' "$1" | sort | tr '\n' ' ' | sed 's/ $//'; }
node_has() {  # USER DIGEST: the node's store holds an image with that digest
  local h; h=$(home_of "$1")
  runuser -u "$1" -- env HOME="$h" "$KILN_BIN" images --no-trunc --format '{{.Digest}}' 2>/dev/null | grep -qx "$2"
}

for mode in $(test_modes); do
  mw=$(make_workdir "$mode")
  cp "$work/known_hosts" "$mw/known_hosts"
  as_mode "$mode" ssh-keygen -q -t ed25519 -N '' -f "$mw/id" || { tap_not_ok "$mode: client key"; continue; }
  cat "$mw/id.pub" >>"$work/keys/kiln-farm-a"
  cat "$mw/id.pub" >>"$work/keys/kiln-farm-b"
  chmod 644 "$work/keys"/*
  f() { as_mode "$mode" env XDG_CONFIG_HOME="$mw/config" KILN_ROOT="$mw/store" "$KILN_BIN" "$@"; }
  ssh_opts=(--identity "$mw/id" --remote-kiln "$KILN_BIN" --ssh-option "UserKnownHostsFile=$mw/known_hosts"
            --ssh-option StrictHostKeyChecking=yes --ssh-option IdentitiesOnly=yes)

  out=$(f farm create "${ssh_opts[@]}" f1 "$NODE_A" "$NODE_B" 2>&1) &&
    ls_out=$(f farm ls --format '{{.Name}} {{.Connections}} {{.Default}}' 2>&1) &&
    [ "$ls_out" = "f1 $NODE_A,$NODE_B true" ] &&
    tap_ok "$mode: farm create f1 with two ssh:// nodes; farm ls: $ls_out" ||
    { tap_not_ok "$mode: farm create/ls: $out $ls_out"; continue; }

  # The two-platform build.
  tag=$REG/farm-$mode/app:1
  cache=$REG/farm-$mode/cache
  start=$(date +%s.%N)
  if f farm build --platforms linux/amd64,linux/arm64 --tls-verify=false --cache-to "$cache" --cache-from "$cache" --build-arg SOURCE_DATE_EPOCH=1700000000 \
       --progress json -t "$tag" "$work/ctx" >"$mw/b1.out" 2>"$mw/b1.err"; then
    tap_ok "$mode: farm build --platforms linux/amd64,linux/arm64 ($(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s)"
  else
    tap_not_ok "$mode: farm build failed"; tail -20 "$mw/b1.err" | diag; continue
  fi
  grep -q "^farm f1: linux/amd64 -> $NODE_A, job kiln-farm-" "$mw/b1.err" &&
    grep -q "^farm f1: linux/arm64 -> $NODE_B (emulated), job kiln-farm-" "$mw/b1.err" &&
    tap_ok "$mode: amd64 went to node a (native), arm64 to node b (emulated)" ||
    { tap_not_ok "$mode: scheduling"; grep '^farm' "$mw/b1.err" | diag; }
  idx=$(index_of "$tag"); rep=$(reported "$mw/b1.err")
  digest=$(cat "$mw/b1.out")
  pushed=$(skopeo inspect --raw --tls-verify=false "docker://$tag" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ -n "$rep" ] && [ "$idx" = "$rep" ] && [ "$digest" = "sha256:$pushed" ]; then
    tap_ok "$mode: the pushed index is $digest and lists exactly the digests the nodes reported ($idx)"
  else
    tap_not_ok "$mode: index '$idx' (digest sha256:$pushed), reported '$rep', printed '$digest'"; diag <"$mw/b1.err"
  fi
  d_amd=${rep#linux/amd64=}; d_amd=${d_amd%% *}; d_arm=${rep##*linux/arm64=}
  node_has kiln-farm-a "$d_amd" && node_has kiln-farm-b "$d_arm" &&
    tap_ok "$mode: node a's store holds the amd64 image, node b's the arm64 image" ||
    tap_not_ok "$mode: node stores do not hold $d_amd / $d_arm"
  arch=$(for p in linux/amd64 linux/arm64; do
      f pull -q --tls-verify=false --platform "$p" "$tag" >/dev/null 2>&1 &&
        f run --rm --network none --platform "$p" "$tag" 2>/dev/null | head -1; done | tr '\n' ' ')
  [ "$arch" = "x86_64 aarch64 " ] && tap_ok "$mode: pulled from the registry, each platform runs its own arch ($arch)" ||
    tap_not_ok "$mode: run of each platform printed '$arch'"

  # A retry with nothing changed: the same job names, the same index.
  if f farm build --platforms linux/amd64,linux/arm64 --tls-verify=false --cache-to "$cache" --cache-from "$cache" --build-arg SOURCE_DATE_EPOCH=1700000000 \
       -t "$tag" "$work/ctx" >"$mw/b2.out" 2>"$mw/b2.err" &&
     [ "$(grep -o 'job kiln-farm-[0-9a-f]*' "$mw/b1.err")" = "$(grep -o 'job kiln-farm-[0-9a-f]*' "$mw/b2.err")" ] &&
     [ "$(cat "$mw/b2.out")" = "$digest" ] && ! grep -q "sending the context" "$mw/b2.err"; then
    tap_ok "$mode: a retry has the same job names and index, and sends no context again"
  else
    tap_not_ok "$mode: retry"; tail -20 "$mw/b2.err" | diag
  fi

  # Fresh node stores: the steps come from the registry cache.
  wipe_node kiln-farm-a; wipe_node kiln-farm-b
  if f farm build --platforms linux/amd64,linux/arm64 --tls-verify=false --cache-from "$cache" --build-arg SOURCE_DATE_EPOCH=1700000000 \
       --progress json -t "$REG/farm-$mode/app:fresh" "$work/ctx" >"$mw/b3.out" 2>"$mw/b3.err"; then
    ran=$(grep -c '"status":"done"' "$mw/b3.err" || true)
    cached=$(grep -c '"status":"cached"' "$mw/b3.err" || true)
    rep3=$(reported "$mw/b3.err")
    if [ "$ran" -eq 0 ] && [ "$cached" -ge 4 ] && [ "$rep3" = "$rep" ]; then
      tap_ok "$mode: fresh node stores: every step from the registry cache ($cached cached, 0 ran), same image digests"
    else
      tap_not_ok "$mode: fresh stores: $ran ran, $cached cached, digests '$rep3' vs '$rep'"; grep '"status"' "$mw/b3.err" | tail -12 | diag
    fi
  else
    tap_not_ok "$mode: build on fresh node stores failed"; tail -20 "$mw/b3.err" | diag
  fi

  # A node's build killed: the farm build fails and pushes no index.
  slow_tag=$REG/farm-$mode/slow:1
  f farm build --platforms linux/amd64,linux/arm64 --tls-verify=false -t "$slow_tag" "$work/ctx-slow" \
    >"$mw/b4.out" 2>"$mw/b4.err" &
  fb=$!
  victim=
  for _ in $(seq 600); do
    victim=$(pgrep -u kiln-farm-b -x kiln | head -1)
    [ -n "$victim" ] && [ -n "$(find "$(home_of kiln-farm-b)/.local/share/kiln" -name started -print -quit 2>/dev/null)" ] && break
    victim=; sleep 0.1
  done
  [ -n "$victim" ] && kill -KILL $(pgrep -u kiln-farm-b -x kiln) 2>/dev/null
  wait "$fb"; rc=$?
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "http://$REG/v2/farm-$mode/slow/manifests/1")
  if [ -n "$victim" ] && [ "$rc" -ne 0 ] && grep -q "node $NODE_B (linux/arm64)" "$mw/b4.err" &&
     grep -q "no index pushed" "$mw/b4.err" && [ "$code" = 404 ]; then
    tap_ok "$mode: killing node b's build fails the farm build (rc=$rc), names the node, and no index is pushed (HTTP $code)"
  else
    tap_not_ok "$mode: killed node build: victim='$victim' rc=$rc HTTP $code"; tail -8 "$mw/b4.err" | diag
  fi

  # Errors a user meets.
  out=$(f farm build --platforms linux/s390x --tls-verify=false -t "$tag" "$work/ctx" 2>&1); rc=$?
  [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "no node of the farm builds linux/s390x; $NODE_A: linux/amd64" &&
    tap_ok "$mode: a platform no node builds: exit 2, naming what each node offers" ||
    tap_not_ok "$mode: s390x: rc=$rc $out"
  f farm create --identity "$mw/id" --ssh-option "UserKnownHostsFile=$mw/known_hosts" dead \
    "ssh://kiln-farm-a@127.0.0.1:$(free_port)" >/dev/null 2>&1
  out=$(f farm build --farm dead --tls-verify=false -t "$tag" "$work/ctx" 2>&1); rc=$?
  [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "ssh could not connect or log in" &&
    tap_ok "$mode: an unreachable node: rc=$rc, '$(printf '%s' "$out" | tail -1 | cut -c1-120)'" ||
    tap_not_ok "$mode: unreachable node: rc=$rc $out"
  out=$(f farm create f1 "$NODE_A" 2>&1); rc=$?
  [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "already exists" && tap_ok "$mode: farm create of an existing name: exit 2" ||
    tap_not_ok "$mode: duplicate create: rc=$rc $out"
  out=$(f farm create bad builder@host 2>&1); rc=$?
  [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "ssh://\[USER@\]HOST\[:PORT\]" && tap_ok "$mode: a node that is no ssh:// URL: exit 2" ||
    tap_not_ok "$mode: bad node: rc=$rc $out"

  # update and rm.
  f farm update --remove "$NODE_B" f1 >/dev/null 2>&1 && f farm update --default dead >/dev/null 2>&1 &&
    [ "$(f farm ls --format '{{.Name}}={{.Default}}' | tr '\n' ' ')" = "f1=false dead=true " ] &&
    [ "$(f farm ls --format json | jq -r '.[0].Connections | join(",")')" = "$NODE_A" ] &&
    tap_ok "$mode: farm update --remove and --default" || tap_not_ok "$mode: farm update: $(f farm ls 2>&1)"
  f farm rm f1 dead >/dev/null 2>&1 && [ "$(f farm ls --format json)" = "[]" ] &&
    tap_ok "$mode: farm rm f1 dead leaves no farm" || tap_not_ok "$mode: farm rm: $(f farm ls --format json 2>&1)"
  rm -rf "$mw"
done
tap_done
