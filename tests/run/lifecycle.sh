#!/usr/bin/env bash
# A container's life beyond run/stop (issue [2.7], docs/run.md, docs/secrets.md):
# run --secret, secret rm of a secret in use, health checks run by the
# monitor, restart policies, kiln restart, kiln events. The real binary, as
# the unprivileged test user and as root (TAP); short intervals keep it fast.
set -u
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

check() {  # check DESCRIPTION COMMAND...: ok when the command succeeds
  local desc=$1; shift
  if "$@"; then tap_ok "$desc"; else tap_not_ok "$desc"; fi
}

json_field() {  # json_field PYEXPR: evaluates on the JSON read from stdin as `j`
  python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"
}

# wait_for SECONDS COMMAND...: retries every 0.1 s until the command succeeds
wait_for() {
  local t=$1 i; shift
  for i in $(seq $((t * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store="$work/store"
  k() { kiln_as "$mode" "$store" "$@"; }
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import busybox"
    continue
  fi

  # 1. run --secret
  value="s3cr3t-$RANDOM-$mode"
  printf %s "$value" | k secret create dbpass - >/dev/null
  out=$(k run --rm --secret dbpass busybox sh -c 'cat /run/secrets/dbpass; stat -c " %a %u %g" /run/secrets/dbpass' 2>"$work/err")
  check "$mode: --secret NAME mounts /run/secrets/NAME mode 444 root ($out)" test "$out" = "$value 444 0 0"
  out=$(k run --rm --secret dbpass,target=/etc/app/pw,uid=1000,gid=1000,mode=0400 busybox \
        sh -c 'stat -c "%a %u %g" /etc/app/pw; su -s /bin/sh nobody -c "cat /etc/app/pw" >/dev/null 2>&1 || echo denied' 2>"$work/err")
  check "$mode: target=, uid=, gid=, mode= honoured ($(echo $out))" test "$(echo $out)" = "400 1000 1000 denied"
  out=$(k run --rm --secret dbpass,type=env,target=DB_PASSWORD busybox sh -c 'echo $DB_PASSWORD' 2>"$work/err")
  check "$mode: type=env gives the process the variable" test "$out" = "$value"
  k run -d --name sec1 --secret dbpass,type=env,target=DB_PASSWORD --secret dbpass busybox sleep 30 >/dev/null 2>"$work/err" || diag <"$work/err"
  out=$(k exec sec1 sh -c 'echo $DB_PASSWORD' 2>&1)
  check "$mode: exec sees the env secret too" test "$out" = "$value"
  wait_for 5 k exec sec1 test -f /run/secrets/dbpass
  k inspect sec1 >"$work/inspect.json" 2>&1
  check "$mode: inspect names the secret but never its value" \
    bash -c "grep -q dbpass '$work/inspect.json' && ! grep -q '$value' '$work/inspect.json'"
  # Only the secret store holds the value: not the record, the upper layer,
  # the run-time state or anything else under the store.
  hits=$(as_mode "$mode" grep -rl --exclude-dir=secrets -- "$value" "$store" 2>/dev/null)
  check "$mode: the value is nowhere in the store but secrets/ (${hits:-none})" test -z "$hits"
  k secret rm dbpass >/dev/null 2>"$work/err"; rc=$?
  check "$mode: secret rm of a secret in use is refused (rc $rc: $(cat "$work/err"))" \
    bash -c "[ $rc -ne 0 ] && grep -q 'in use by container sec1' '$work/err'"
  check "$mode: ... and the secret is still there" k secret exists dbpass
  k rm -f sec1 >/dev/null 2>&1
  k run --name sec2 --secret dbpass busybox true >/dev/null 2>&1
  k secret rm -f dbpass >/dev/null 2>"$work/err"; rc=$?
  k secret exists dbpass; still=$?
  check "$mode: secret rm -f removes it anyway (rc $rc, exists $still)" test "$rc" -eq 0 -a "$still" -eq 1
  k start sec2 >/dev/null 2>"$work/err"; rc=$?
  check "$mode: a container whose secret was removed fails to start clearly (rc $rc)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'secret dbpass .* no longer exists' '$work/err'"
  k rm -f sec2 >/dev/null 2>&1
  k run --rm --secret dbpass busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: run --secret of a removed secret fails clearly (rc $rc)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'no secret with name or id \"dbpass\"' '$work/err'"
  k run --rm --secret x,type=env,mode=0400 busybox true >/dev/null 2>"$work/err"; rc=$?
  check "$mode: env secrets take no uid/gid/mode (rc $rc)" bash -c "[ $rc -eq 2 ] && grep -q 'cannot be set with secret type env' '$work/err'"

  for c in $(k ps -a -q); do k rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$work" 2>/dev/null
done
tap_done
