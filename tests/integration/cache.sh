#!/usr/bin/env bash
# Cache correctness (docs/cache.md): change exactly one input and assert,
# per step, from `--progress json`, which steps came from the cache (C) and
# which ran (R). As the unprivileged test user and as root (lib.sh).
# Also: --no-cache-filter, --no-cache, --layers=false, --explain-cache,
# secrets (never in the image; rerun only with --secret-cache-key), two
# concurrent builds on one store, and a build SIGKILLed mid-RUN.
set -u
. "$(dirname "$0")/lib.sh"

# steps FILE: "stage/step=C|R ..." for every cached/done event, in a fixed order
steps() {
  python3 - "$1" <<'PY'
import json, sys
out = {}
for line in open(sys.argv[1], errors="replace"):
    line = line.strip()
    if not line.startswith("{"):
        continue
    try:
        e = json.loads(line)
    except ValueError:
        continue
    st = e.get("status")
    if st in ("cached", "done") and e.get("step", 0) > 0:
        out[f'{e["stage"]}/{e["step"]}'] = "C" if st == "cached" else "R"
print(" ".join(f"{k}={out[k]}" for k in sorted(out)))
PY
}

ALL_C="base/1=C stage-1/1=C stage-1/3=C stage-1/4=C stage-1/5=C stage-1/6=C stage-1/8=C stage-1/9=C"

write_context() {  # write_context DIR
  local d=$1
  mkdir -p "$d/sub"
  cat >"$d/Containerfile" <<'EOF'
FROM busybox AS base
COPY c.txt /base.txt

FROM basetwo
RUN echo first > /first.txt
ARG UNUSED=1
COPY sub/ /sub/
COPY a.txt /a.txt
RUN cat /a.txt > /copy.txt
COPY --from=base /base.txt /from-base.txt
ARG USED=1
RUN echo "$USED" > /used.txt
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /toklen
EOF
  echo a1 >"$d/a.txt"
  echo c1 >"$d/c.txt"
  echo b1 >"$d/sub/b.txt"
  echo i1 >"$d/sub/ignored.txt"
  echo "sub/ignored.txt" >"$d/.dockerignore"
  printf 'hunter2-%s' "$RANDOM" >"$d/tok"
  chmod 644 "$d"/a.txt "$d"/c.txt "$d"/sub/* "$d"/tok
}

# build MODE STORE CTX OUT ARGS...: a json-progress build; stderr in OUT.err
build() {
  local mode=$1 store=$2 ctx=$3 out=$4; shift 4
  kiln_as "$mode" "$store" build -t cachetest --progress=json --secret "id=tok,src=$ctx/tok" "$@" "$ctx" \
    >"$out.out" 2>"$out.err"
}

# expect MODE NAME WANT FILE
expect() {
  local got; got=$(steps "$4.err")
  if [ "$got" = "$3" ]; then tap_ok "$1 $2"; else
    tap_not_ok "$1 $2"; echo "got:  $got" | diag; echo "want: $3" | diag; grep -v '"output"' "$4.err" | tail -5 | diag
  fi
}

# explains MODE WHAT FILE STEP TEXT: FILE.err has an --explain-cache line
# for step STEP ("" = any step) that says TEXT.
explains() {
  local step="\"step\":$4"; [ -z "$4" ] && step=''
  if grep '"status":"explain"' "$3.err" | grep -- "$step" | grep -q -- "$5"; then
    tap_ok "$1 --explain-cache names $2"
  else
    tap_not_ok "$1 --explain-cache names $2"; grep '"explain"' "$3.err" | diag
  fi
}

# check (MODE STORE NAME): the store's fsck is clean
store_check() {
  if kiln_as "$1" "$2" prune --check >"$3.check" 2>&1; then tap_ok "$1 $4: store check clean"; else
    tap_not_ok "$1 $4: store check"; diag <"$3.check"; fi
}

for mode in $(test_modes); do
  # Not lib.sh's /tmp/kiln-it.*: other suites clean those up while this one runs.
  work=$(mktemp -d /var/tmp/kiln-cachetest.XXXXXX); chmod 755 "$work"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$work"
  store="$work/store"
  ctx="$work/ctx"
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import the busybox base"; continue
  fi
  kiln_as "$mode" "$store" tag busybox basetwo >/dev/null 2>&1 || { tap_not_ok "$mode: tag basetwo"; continue; }
  as_mode "$mode" bash -c "$(declare -f write_context); write_context '$ctx'"
  o="$work/b"

  build "$mode" "$store" "$ctx" "$o.0" || { tap_not_ok "$mode first build"; diag <"$o.0.err"; continue; }
  expect "$mode" "first build runs every step" \
    "base/1=R stage-1/1=R stage-1/3=R stage-1/4=R stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R" "$o.0"
  build "$mode" "$store" "$ctx" "$o.1"
  expect "$mode" "rebuild, nothing changed: every step cached" "$ALL_C" "$o.1"

  # One context file: content, mode, owner.
  CHANGED_A="base/1=C stage-1/1=C stage-1/3=C stage-1/4=R stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R"
  as_mode "$mode" bash -c "echo a2 > '$ctx/a.txt'"
  build "$mode" "$store" "$ctx" "$o.2" --explain-cache
  expect "$mode" "a.txt content changed: COPY a.txt and later steps rerun" "$CHANGED_A" "$o.2"
  explains "$mode" "a.txt and 'content' (json)" "$o.2" 4 'file a.txt changed: content'
  as_mode "$mode" bash -c "echo a3 > '$ctx/a.txt'"
  kiln_as "$mode" "$store" build -t cachetest --progress=plain --explain-cache --secret "id=tok,src=$ctx/tok" "$ctx" \
    >"$o.2p.out" 2>"$o.2p.err"
  if grep -q 'cache miss: COPY a.txt /a.txt' "$o.2p.err" && grep -q 'because file a.txt changed: content' "$o.2p.err" &&
     grep -q 'cache hit: COPY sub/ /sub/' "$o.2p.err" &&
     grep -q 'stage-1 5/9\] cache miss' "$o.2p.err" && grep -q 'because an earlier step changed: step 4' "$o.2p.err"; then
    tap_ok "$mode --explain-cache (plain) names the file, hits and the earlier change"
  else
    tap_not_ok "$mode --explain-cache (plain)"; grep -i 'cache' "$o.2p.err" | diag
  fi

  as_mode "$mode" chmod 600 "$ctx/a.txt"
  build "$mode" "$store" "$ctx" "$o.3" --explain-cache
  expect "$mode" "a.txt mode changed: COPY a.txt and later steps rerun" "$CHANGED_A" "$o.3"
  explains "$mode" "the mode change" "$o.3" "" 'file a.txt changed: mode 0644 -> 0600'

  if [ "$mode" = root ]; then
    chown 1234:1234 "$ctx/a.txt"
  elif [ "$(id -u)" -eq 0 ]; then
    # uid/gid 1 inside the user's namespace = the first subordinate ids
    chown "$(awk -F: -v u="$KILN_TEST_USER" '$1 == u {print $2; exit}' /etc/subuid):$(awk -F: -v u="$KILN_TEST_USER" '$1 == u {print $2; exit}' /etc/subgid)" "$ctx/a.txt"
  else
    kiln_as "$mode" "$store" unshare chown 1:1 "$ctx/a.txt"
  fi
  build "$mode" "$store" "$ctx" "$o.4" --explain-cache
  expect "$mode" "a.txt owner changed: COPY a.txt and later steps rerun" "$CHANGED_A" "$o.4"
  explains "$mode" "the owner change" "$o.4" "" 'file a.txt changed: owner'

  # An ignored file: nothing reruns.
  as_mode "$mode" bash -c "echo i2 > '$ctx/sub/ignored.txt'"
  build "$mode" "$store" "$ctx" "$o.5"
  expect "$mode" "ignored file changed: nothing reruns" "$ALL_C" "$o.5"
  # A file in a copied directory that is not ignored.
  as_mode "$mode" bash -c "echo b2 > '$ctx/sub/b.txt'"
  build "$mode" "$store" "$ctx" "$o.5b"
  expect "$mode" "sub/b.txt changed: COPY sub/ and later rerun" \
    "base/1=C stage-1/1=C stage-1/3=R stage-1/4=R stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R" "$o.5b"

  # Build args: USED is declared just before the RUN that uses it; UNUSED
  # is declared early and used by no step: the COPYs after it do not see
  # it, RUN steps after its declaration do (Docker: every RUN after an ARG
  # sees it in its environment), and everything after them follows.
  build "$mode" "$store" "$ctx" "$o.6" --build-arg USED=2 --explain-cache
  expect "$mode" "used build arg changed: only the RUN after its ARG reruns" \
    "base/1=C stage-1/1=C stage-1/3=C stage-1/4=C stage-1/5=C stage-1/6=C stage-1/8=R stage-1/9=R" "$o.6"
  explains "$mode" "the build arg" "$o.6" "8" 'build arg USED changed'
  build "$mode" "$store" "$ctx" "$o.7" --build-arg UNUSED=2
  expect "$mode" "unused build arg changed: steps before it and COPYs after it stay cached" \
    "base/1=C stage-1/1=C stage-1/3=C stage-1/4=C stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R" "$o.7"

  # A --from stage's output changed (the base stage copies c.txt).
  build "$mode" "$store" "$ctx" "$o.8a"
  as_mode "$mode" bash -c "echo c2 > '$ctx/c.txt'"
  build "$mode" "$store" "$ctx" "$o.8" --explain-cache
  expect "$mode" "--from stage output changed: its COPY --from and later rerun" \
    "base/1=R stage-1/1=C stage-1/3=C stage-1/4=C stage-1/5=C stage-1/6=R stage-1/8=R stage-1/9=R" "$o.8"
  explains "$mode" "the --from stage" "$o.8" "6" 'the result of stage base changed'

  # The base image tag moved to different content.
  printf 'FROM busybox\nRUN echo v2 > /v2\n' >"$work/Containerfile.base2"; chmod 644 "$work/Containerfile.base2"
  kiln_as "$mode" "$store" build -q -t basetwo -f "$work/Containerfile.base2" "$work" >/dev/null 2>"$o.9b.err" \
    || { tap_not_ok "$mode retag basetwo"; diag <"$o.9b.err"; }
  build "$mode" "$store" "$ctx" "$o.9" --explain-cache
  expect "$mode" "base image retagged: every step of that stage reruns, the other stage hits" \
    "base/1=C stage-1/1=R stage-1/3=R stage-1/4=R stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R" "$o.9"
  explains "$mode" "the base image" "$o.9" "1" 'the base changed'

  # Secrets: not in the key unless --secret-cache-key; never in the image.
  as_mode "$mode" bash -c "printf 'other-secret-%s' \$RANDOM > '$ctx/tok'"
  build "$mode" "$store" "$ctx" "$o.10"
  expect "$mode" "secret changed without --secret-cache-key: nothing reruns" "$ALL_C" "$o.10"
  build "$mode" "$store" "$ctx" "$o.11" --secret-cache-key
  expect "$mode" "--secret-cache-key first time: the secret's RUN reruns" \
    "base/1=C stage-1/1=C stage-1/3=C stage-1/4=C stage-1/5=C stage-1/6=C stage-1/8=C stage-1/9=R" "$o.11"
  build "$mode" "$store" "$ctx" "$o.12" --secret-cache-key
  expect "$mode" "--secret-cache-key, same secret: cached" "$ALL_C" "$o.12"
  as_mode "$mode" bash -c "printf 'third-secret-value' > '$ctx/tok'"
  build "$mode" "$store" "$ctx" "$o.13" --secret-cache-key --explain-cache
  expect "$mode" "--secret-cache-key, secret changed: the secret's RUN reruns" \
    "base/1=C stage-1/1=C stage-1/3=C stage-1/4=C stage-1/5=C stage-1/6=C stage-1/8=C stage-1/9=R" "$o.13"
  explains "$mode" "the secret (not its value)" "$o.13" "9" 'secret tok changed'
  secret=$(cat "$ctx/tok")
  flat="$work/flat"; rm -rf "$flat"; mkdir -p "$flat"
  if kiln_as "$mode" "$store" save --format oci-archive -o "$work/img.tar" cachetest 2>"$o.save" &&
     python3 "$KILN_SOURCE_ROOT/tests/integration/ociflat.py" "$work/img.tar" "$flat" 2>>"$o.save"; then
    leaks=$( { grep -rlF -- "$secret" "$flat" "$o.13.err" "$o.13.out"; grep -c 'run/secrets' "$flat/list"; } 2>/dev/null | grep -v '^0$')
    want_len=$(printf '%s' "$secret" | wc -c)
    if [ -z "$leaks" ] && [ "$(tr -d ' \n' <"$flat/root/toklen")" = "$want_len" ]; then
      tap_ok "$mode the RUN read the secret; it is in no layer, no log, no /run/secrets stub"
    else
      tap_not_ok "$mode secret leaked or unread"; echo "$leaks" | diag; cat "$flat/root/toklen" 2>&1 | diag
    fi
    grep -qF -- "$secret" "$flat/config.json" && tap_not_ok "$mode secret in the config" || tap_ok "$mode secret not in config/history"
  else
    tap_not_ok "$mode save/flatten"; diag <"$o.save"
  fi
  printf 'FROM busybox\nRUN --mount=type=secret,id=missing,required=true true\n' >"$work/Containerfile.req"
  chmod 644 "$work/Containerfile.req"
  kiln_as "$mode" "$store" build -q -f "$work/Containerfile.req" "$work" >/dev/null 2>"$o.req.err"
  rc=$?
  [ $rc -eq 2 ] && grep -q 'secret "missing" is required' "$o.req.err" \
    && tap_ok "$mode a required secret that is not given fails (exit 2)" \
    || { tap_not_ok "$mode required secret (exit $rc)"; diag <"$o.req.err"; }

  # RUN --mount=type=ssh: the agent socket is bound in and SSH_AUTH_SOCK set.
  agent_out=$(as_mode "$mode" ssh-agent -a "$work/agent.sock" 2>&1)
  agent_pid=$(echo "$agent_out" | sed -n 's/.*SSH_AGENT_PID=\([0-9]*\).*/\1/p' | head -1)
  printf 'FROM busybox\nRUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "agent at $SSH_AUTH_SOCK"\n' >"$work/Containerfile.ssh"
  chmod 644 "$work/Containerfile.ssh"
  if [ -S "$work/agent.sock" ]; then
    kiln_as "$mode" "$store" build --progress=plain --ssh "default=$work/agent.sock" -f "$work/Containerfile.ssh" "$work" \
      >"$o.ssh.out" 2>"$o.ssh.err"
    rc=$?
    [ $rc -eq 0 ] && grep -q 'agent at /run/buildkit/ssh_agent.0' "$o.ssh.err" \
      && tap_ok "$mode RUN --mount=type=ssh sees the agent socket at SSH_AUTH_SOCK" \
      || { tap_not_ok "$mode ssh mount (rc $rc)"; diag <"$o.ssh.err"; }
  else
    tap_skip "$mode ssh mount: ssh-agent did not start"
  fi
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  printf 'FROM busybox\nRUN --mount=type=ssh,required=true true\n' >"$work/Containerfile.sshreq"
  chmod 644 "$work/Containerfile.sshreq"
  kiln_as "$mode" "$store" build -q --no-cache -f "$work/Containerfile.sshreq" "$work" >/dev/null 2>"$o.sshreq.err"
  rc=$?
  [ $rc -eq 2 ] && grep -q 'ssh agent "default" is required' "$o.sshreq.err" \
    && tap_ok "$mode a required ssh agent that is not given fails (exit 2)" \
    || { tap_not_ok "$mode required ssh (exit $rc)"; diag <"$o.sshreq.err"; }

  # --no-cache-filter: by name, by index.
  build "$mode" "$store" "$ctx" "$o.14" --secret-cache-key --no-cache-filter base
  expect "$mode" "--no-cache-filter base: base reruns, the other stage hits (same result)" \
    "base/1=R stage-1/1=C stage-1/3=C stage-1/4=C stage-1/5=C stage-1/6=C stage-1/8=C stage-1/9=C" "$o.14"
  build "$mode" "$store" "$ctx" "$o.15" --secret-cache-key --no-cache-filter 1
  expect "$mode" "--no-cache-filter 1 (index): that stage reruns, base hits" \
    "base/1=C stage-1/1=R stage-1/3=R stage-1/4=R stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R" "$o.15"
  build "$mode" "$store" "$ctx" "$o.16" --secret-cache-key --no-cache
  expect "$mode" "--no-cache: everything reruns" \
    "base/1=R stage-1/1=R stage-1/3=R stage-1/4=R stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R" "$o.16"
  build "$mode" "$store" "$ctx" "$o.17" --secret-cache-key --layers=false
  expect "$mode" "--layers=false: everything reruns" \
    "base/1=R stage-1/1=R stage-1/3=R stage-1/4=R stage-1/5=R stage-1/6=R stage-1/8=R stage-1/9=R" "$o.17"
  build "$mode" "$store" "$ctx" "$o.18" --secret-cache-key
  expect "$mode" "after --no-cache/--layers=false: cached again" "$ALL_C" "$o.18"

  # Two concurrent builds of different Containerfiles on one store.
  for n in 1 2; do
    mkdir -p "$work/par$n"
    printf 'FROM busybox\nRUN echo par%s > /p\nRUN sleep 1; echo %s > /q\nCOPY f /f\n' "$n" "$n" >"$work/par$n/Containerfile"
    echo "$n" >"$work/par$n/f"
    [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/par$n"
  done
  kiln_as "$mode" "$store" build -q -t par1 "$work/par1" >"$o.p1.out" 2>"$o.p1.err" & p1=$!
  kiln_as "$mode" "$store" build -q -t par2 "$work/par2" >"$o.p2.out" 2>"$o.p2.err" & p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  if [ $r1 -eq 0 ] && [ $r2 -eq 0 ]; then tap_ok "$mode two concurrent builds on one store succeed"; else
    tap_not_ok "$mode concurrent builds ($r1, $r2)"; diag <"$o.p1.err"; diag <"$o.p2.err"; fi
  store_check "$mode" "$store" "$o.par" "after concurrent builds"

  # A build SIGKILLed in the middle of a RUN.
  mkdir -p "$work/kill"
  printf 'FROM busybox\nRUN echo before > /before\nRUN echo started; sleep 30; echo done > /late\nRUN echo after > /after\n' \
    >"$work/kill/Containerfile"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/kill"
  setsid bash -c "$(declare -f as_mode kiln_as); KILN_BIN='$KILN_BIN' KILN_TEST_USER='${KILN_TEST_USER:-}' \
    kiln_as '$mode' '$store' build -t killed --progress=json '$work/kill'" >"$o.k.out" 2>"$o.k.err" &
  kpid=$!
  for _ in $(seq 1 300); do grep -q '"output":"started"' "$o.k.err" 2>/dev/null && break; sleep 0.1; done
  if grep -q '"output":"started"' "$o.k.err"; then
    kill -9 -- -"$kpid" 2>/dev/null; wait "$kpid" 2>/dev/null
    sleep 0.5
    store_check "$mode" "$store" "$o.kc" "after a build SIGKILLed mid-RUN"
    kiln_as "$mode" "$store" build -t killed --progress=json "$work/kill" >"$o.k2.out" 2>"$o.k2.err"
    rc=$?
    got=$(steps "$o.k2.err")
    if [ $rc -eq 0 ] && [ "$got" = "stage-0/1=C stage-0/2=R stage-0/3=R" ]; then
      tap_ok "$mode the next build is correct (the killed step reruns)"
    else
      tap_not_ok "$mode next build after the kill (rc $rc): $got"; tail -3 "$o.k2.err" | diag
    fi
  else
    tap_not_ok "$mode the killed build never reached its RUN"; diag <"$o.k.err"; kill -9 -- -"$kpid" 2>/dev/null
  fi
  store_check "$mode" "$store" "$o.end" "at the end"
  [ -n "${KILN_KEEP:-}" ] || rm -rf "$work"
done
tap_done
