#!/usr/bin/env bash
# A killed or cancelled command stops (issue 26 [2.1b]; docs/store.md
# "Cancellation"). Each long-running command -- build (during a RUN and
# during the COPY of a big context), pull, push, load, save, prune -a, rmi,
# run -d, run --rm, exec -- is sent SIGKILL, SIGTERM and SIGINT at a random
# moment (fixed seed: the same moments every run), as the unprivileged test
# user and as root. Then:
#   - SIGINT/SIGTERM: exit 130/143 with one "cancelled by SIGxxx" line, or 0
#     when the command had finished (a run/exec whose container process died
#     of the forwarded signal exits with its status, 130/143, silently);
#   - within 1 s no process the command started is alive (found by session,
#     and by the CANCEL_MARK variable in the environment of kiln and of the
#     container processes); a detached container that `ps -a` lists is
#     removed with `rm -f` first (its monitor may outlive `run -d`);
#   - `kiln prune --check` passes, every containers/<id> is listed by ps -a,
#     a cancelled (not killed) command left nothing in the store's tmp/, and
#     the next command (`prune`, which needs every other user of the store
#     gone) does not wait for a lock.
set -u
. "$(dirname "$0")/lib.sh"

SEED=${KILN_CANCEL_SEED:-2026}
RANDOM=$SEED
for tool in setsid setpriv python3; do
  command -v $tool >/dev/null || { tap_skip "$tool not installed"; tap_done; exit; }
done
registry_workdir cancel
KILN_EXE=$(readlink -f "$KILN_BIN")

# Processes of a trial: in session SID (kiln runs as its leader), or with
# CANCEL_MARK=MARK in their environment. Zombies do not count.
cat >"$work/scan.py" <<'PY'
import os, sys
mark = ("CANCEL_MARK=" + sys.argv[1]).encode()
sid = sys.argv[2]
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) == os.getpid():
        continue
    try:
        stat = open(f"/proc/{p}/stat").read()
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        ours = fields[3] == sid
        if not ours:
            try:
                ours = mark in open(f"/proc/{p}/environ", "rb").read().split(b"\0")
            except OSError:
                pass
        if ours:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            print(p, cmd.strip())
    except (OSError, ValueError):
        pass
PY

# The big context: 96 files of 1 MiB (random, so that packing is real work).
mkdir -p "$work/big"
for i in $(seq 96); do head -c 1048576 /dev/urandom >"$work/big/f$i"; done
printf 'FROM busybox\nCOPY . /ctx/\n' >"$work/big/Containerfile"
mkdir -p "$work/runctx"
printf 'FROM busybox\nARG CANCEL_MARK\nRUN echo start; sleep 30\n' >"$work/runctx/Containerfile"
printf 'FROM busybox\nRUN echo app >/app\n' >"$work/appctx"
chmod -R a+rX "$work"

UHOME=
[ "$(id -u)" -eq 0 ] && UHOME=$(getent passwd "${KILN_TEST_USER:-kiln-test}" | cut -d: -f6)

# launch MODE STORE MARK OUT ERR ARGS...: kiln in a session of its own (so
# that $! is kiln itself, and its session id is its pid), SIGINT at its
# default (a background job of a script would otherwise start with it
# ignored). Sets PID.
launch() {
  local mode=$1 store=$2 mark=$3 out=$4 err=$5; shift 5
  if [ "$mode" = user ] && [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid="$KILN_TEST_USER" --regid="$KILN_TEST_USER" --init-groups \
      env --default-signal=INT -i PATH="$PATH" HOME="$UHOME" XDG_RUNTIME_DIR= KILN_ROOT="$store" \
      CANCEL_MARK="$mark" setsid "$KILN_BIN" "$@" >"$out" 2>"$err" </dev/null &
  else
    env --default-signal=INT KILN_ROOT="$store" CANCEL_MARK="$mark" setsid "$KILN_BIN" "$@" \
      >"$out" 2>"$err" </dev/null &
  fi
  PID=$!
}

# wait_exec PID: until the process has exec'ed kiln (or is gone)
wait_exec() {
  local i
  for i in $(seq 500); do
    [ -e "/proc/$1" ] || return 0
    [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$KILN_EXE" ] && return 0
    sleep 0.002
  done
}

# listed MODE STORE ID: ps -a lists the container (12-digit prefix)
listed() { kiln_as "$1" "$2" ps -a -q | grep -qx "${3:0:12}"; }

# trial MODE STORE NAME SIG MAXDELAY_MS KIND ARGS...
#   KIND: plain (the command handles the signal), ctr (run/exec: the signal
#   may go to the container's process), detach (run -d). An argument
#   CANCEL_MARK=MARK becomes CANCEL_MARK=<this trial's mark>.
trial() {
  local mode=$1 store=$2 name=$3 sig=$4 maxd=$5 kind=$6; shift 6
  local mark="c$RANDOM$RANDOM" delay=$((RANDOM % maxd))
  local out="$work/out.$mark" err="$work/err.$mark" what="$mode: $name, SIG$sig after ${delay} ms"
  local problems="" i
  local args=() a
  for a in "$@"; do [ "$a" = CANCEL_MARK=MARK ] && args+=("CANCEL_MARK=$mark") || args+=("$a"); done
  launch "$mode" "$store" "$mark" "$out" "$err" "${args[@]}"
  local pid=$PID
  wait_exec "$pid"
  sleep "$(printf '0.%03d' "$delay")"
  kill -s "$sig" "$pid" 2>/dev/null
  # Up to 20 s for it to end (a zombie has ended), then SIGKILL.
  local state
  for i in $(seq 400); do
    state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)
    { [ -z "$state" ] || [ "$state" = Z ]; } && break
    sleep 0.05
  done
  { [ -z "$state" ] || [ "$state" = Z ]; } || { problems+=" still running 20 s after SIG$sig"; kill -9 "$pid"; }
  wait "$pid" 2>/dev/null
  local rc=$?
  # 1. exit status and message
  local want=$((128 + $(kill -l "$sig")))
  if [ "$sig" = KILL ]; then
    [ "$rc" = 137 ] || [ "$rc" = 0 ] || problems+=" exit $rc (want 137)"
  elif [ "$rc" = "$want" ]; then
    if ! grep -q "cancelled by SIG$sig" "$err" && [ "${kind#ctr}" = "$kind" ]; then
      problems+=" exit $rc without the 'cancelled by SIG$sig' line"
    fi
    if [ "$(grep -c 'cancelled by' "$err")" -gt 1 ]; then problems+=" the message twice"; fi
  elif [ "$rc" != 0 ]; then
    problems+=" exit $rc (want $want or 0)"
  fi
  # 2. a detached container that ps -a lists may run on: remove it.
  if [ "$kind" != plain ]; then
    for d in "$store"/containers/*/; do
      d=$(basename "$d"); [[ "$d" =~ ^[0-9a-f]{64}$ ]] || continue
      grep -q "$mark" "$store/containers/$d/config.json" 2>/dev/null || continue
      if listed "$mode" "$store" "$d"; then
        kiln_as "$mode" "$store" rm -f "$d" >/dev/null 2>"$work/rm.err" || problems+=" rm -f of the listed container failed: $(head -1 "$work/rm.err")"
      fi
    done
  fi
  # 3. nothing the command started is alive (1 s)
  local left=""
  for i in $(seq 20); do
    left=$(python3 "$work/scan.py" "$mark" "$pid")
    [ -z "$left" ] && break
    sleep 0.05
  done
  [ -z "$left" ] || problems+=" still alive after 1 s: $(echo "$left" | tr '\n' ';')"
  # 4. the store: consistent, no unlisted container, no temp files after a cancel
  if ! kiln_as "$mode" "$store" prune --check >"$work/check.out" 2>&1; then
    problems+=" prune --check: $(grep -v '^ok' "$work/check.out" | head -2 | tr '\n' ' ')"
  fi
  local ids
  ids=$(kiln_as "$mode" "$store" ps -a -q 2>/dev/null)
  for d in "$store"/containers/*/; do
    [ -d "$d" ] || continue
    d=$(basename "$d"); [[ "$d" =~ ^[0-9a-f]{64}$ ]] || continue
    echo "$ids" | grep -qx "${d:0:12}" || problems+=" containers/$d is not listed by ps -a"
  done
  if [ "$sig" != KILL ] && [ "$rc" = "$want" ] && [ -d "$store/tmp" ] && [ -n "$(ls -A "$store/tmp")" ]; then
    problems+=" left in tmp/: $(ls -A "$store/tmp" | head -3 | tr '\n' ' ')"
  fi
  # 5. the next command does not wait: prune needs every other user gone
  local t0=$SECONDS
  if ! kiln_as "$mode" "$store" prune -f >/dev/null 2>"$work/prune.err" </dev/null; then
    problems+=" prune after it failed: $(head -1 "$work/prune.err")"
  elif [ $((SECONDS - t0)) -ge 3 ]; then
    problems+=" prune after it waited $((SECONDS - t0)) s"
  fi
  if [ -z "$problems" ]; then
    tap_ok "$what: exit $rc, nothing left"
  else
    tap_not_ok "$what:$problems"
    diag <"$err"
  fi
  rm -f "$out" "$err"
}

n=0
for mode in $(test_modes); do
  mw=$(make_workdir "$mode")
  S=$mw/store
  import_busybox "$mode" "$S" "$mw" || { tap_not_ok "$mode: import busybox"; continue; }
  cp "$work/appctx" "$mw/Containerfile"; chmod 644 "$mw/Containerfile"
  if ! kiln_as "$mode" "$S" build -q -t app "$mw" >/dev/null 2>"$mw/b.err" ||
     ! kiln_as "$mode" "$S" push app "$REG/$mode/app:latest" >/dev/null 2>>"$mw/b.err" ||
     ! kiln_as "$mode" "$S" save -o "$mw/app.tar" app 2>>"$mw/b.err" ||
     ! kiln_as "$mode" "$S" run -d --name target busybox sleep 600 >/dev/null 2>>"$mw/b.err"; then
    tap_not_ok "$mode: set-up (build, push, save, run -d)"; diag <"$mw/b.err"; continue
  fi
  # fresh DIR: a new store holding only "app" (from the archive)
  fresh() { kiln_as "$mode" "$1" load -i "$mw/app.tar" >/dev/null 2>&1 || echo "# load into $1 failed" >&2; }
  for sig in KILL TERM INT; do
    trial "$mode" "$S" "build (RUN)" $sig 900 plain build --no-cache --build-arg CANCEL_MARK=MARK -t cancelled "$work/runctx"
    trial "$mode" "$S" "build (COPY of a 96 MiB context)" $sig 900 plain build --no-cache -t big "$work/big"
    n=$((n + 1))
    trial "$mode" "$mw/p$n" "pull" $sig 200 plain pull -q "$REG/$mode/app:latest"
    trial "$mode" "$S" "push" $sig 200 plain push app "$REG/$mode/push$n:latest"
    n=$((n + 1))
    trial "$mode" "$mw/l$n" "load" $sig 120 plain load -i "$mw/app.tar"
    trial "$mode" "$S" "save" $sig 120 plain save -o "$mw/save$n.tar" app
    if [ -e "$mw/save$n.tar" ] && ! tar -tf "$mw/save$n.tar" >/dev/null 2>&1; then
      tap_not_ok "$mode: save SIG$sig left a partial archive"
    fi
    n=$((n + 1)); fresh "$mw/pr$n"
    kiln_as "$mode" "$mw/pr$n" run --rm app true >/dev/null 2>&1  # unpacked layers for prune to remove
    trial "$mode" "$mw/pr$n" "prune -a" $sig 80 plain prune -a -f
    n=$((n + 1)); fresh "$mw/r$n"
    trial "$mode" "$mw/r$n" "rmi" $sig 80 plain rmi -f app
    trial "$mode" "$S" "run -d" $sig 300 detach run -d -e CANCEL_MARK=MARK busybox sleep 30
    trial "$mode" "$S" "run --rm" $sig 400 ctr run --rm -e CANCEL_MARK=MARK busybox sleep 30
    trial "$mode" "$S" "exec" $sig 150 ctr exec -e CANCEL_MARK=MARK target sleep 30
  done
  kiln_as "$mode" "$S" rm -f target >/dev/null 2>&1
  rm -rf "$mw"
done
tap_done
