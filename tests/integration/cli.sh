#!/usr/bin/env bash
# The podman command line (issue [2.4] items 3 and 6), through the real
# binary: command groups and aliases (image/container/system/buildx),
# --version, the messages for unknown commands and flags (podman 4.3's
# wording, compared with the real podman when it is installed), usage lines
# that name the positionals, examples, `kiln help`, and the man pages and
# shell completion generated from the command table. As the unprivileged
# test user and as root (TAP).
set -u
export KILN_TEST_USER=${KILN_TEST_USER:-kiln-test}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

WORK_ROOT=$(mktemp -d /tmp/kiln-cli-it.XXXXXX)
chmod 755 "$WORK_ROOT"
trap 'rm -rf "$WORK_ROOT"' EXIT
K=$KILN_BIN

# check NAME CMD...: runs CMD, keeps stdout/stderr/status in OUT/ERR/RC.
run_k() {
  OUT=$("$@" 2>"$WORK_ROOT/err"); RC=$?
  ERR=$(cat "$WORK_ROOT/err")
}
expect() {  # expect DESCRIPTION CONDITION...
  local what=$1; shift
  if "$@"; then tap_ok "$what"; else
    tap_not_ok "$what"
    { echo "rc=$RC"; echo "stdout:"; echo "$OUT" | head -20; echo "stderr:"; echo "$ERR" | head -20; } | diag
  fi
}
has_podman() { command -v podman >/dev/null 2>&1; }
# on_tty ANSWER CMD...: runs CMD with stdin/stdout on a pseudo-terminal,
# types ANSWER once it asks "[y/N]", prints what the terminal showed; the
# status is CMD's.
on_tty() {
  python3 - "$@" <<'PY'
import os, pty, sys, time
answer, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
seen, sent, end = b"", False, time.time() + 30
while time.time() < end:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not sent and b"[y/N]" in seen:
        os.write(fd, answer.encode() + b"\n")
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(status))
PY
}

# --- no store needed -------------------------------------------------------
run_k "$K" --version
expect "--version prints 'kiln version X' (podman: 'podman version X')" \
  bash -c '[[ $0 =~ ^kiln\ version\ [0-9]+\.[0-9]+ ]] && [ "$1" = 0 ]' "$OUT" "$RC"
V1=$OUT
run_k "$K" -v
expect "-v is --version" [ "$OUT" = "$V1" -a "$RC" = 0 ]
run_k "$K" version
expect "kiln version still works" [ "$RC" = 0 ]

run_k "$K" imgaes
expect "typo: unrecognized command with the closest match" \
  bash -c '[ "$1" = 2 ] && grep -qxF "kiln: error: unrecognized command \`kiln imgaes\`" <<<"$0" &&
           grep -qx "Did you mean this?" <<<"$0" && grep -qxP "\timages" <<<"$0" &&
           grep -qxF "Try '"'"'kiln --help'"'"' for more information" <<<"$0"' "$ERR" "$RC"
if has_podman; then
  P=$(cd / && podman imgaes 2>&1 >/dev/null)
  K_SUGG=$(sed -n '/Did you mean/,/^$/p' <<<"$ERR"); P_SUGG=$(sed -n '/Did you mean/,/^$/p' <<<"$P")
  expect "typo: the same suggestion block as podman 4.3" [ "$K_SUGG" = "$P_SUGG" ]
  P=$(cd / && podman contaner ls 2>&1 >/dev/null)
  run_k "$K" contaner ls
  expect "typo in a group name: podman's suggestion (container)" \
    [ "$(sed -n '/Did you mean/,/^$/p' <<<"$ERR")" = "$(sed -n '/Did you mean/,/^$/p' <<<"$P")" ]
else
  tap_skip "podman not installed: suggestion compared with podman"
  tap_skip "podman not installed: group suggestion compared with podman"
fi
run_k "$K" zzzz
expect "no close match: no suggestion block, exit 2" \
  bash -c '[ "$1" = 2 ] && grep -qxF "kiln: error: unrecognized command \`kiln zzzz\`" <<<"$0" && ! grep -q "Did you mean" <<<"$0"' "$ERR" "$RC"
run_k "$K" container bogus
expect "unknown command in a group names the group" \
  bash -c '[ "$1" = 2 ] && grep -qxF "kiln: error: unrecognized command \`kiln container bogus\`" <<<"$0" &&
           grep -qF "Try '"'"'kiln container --help'"'"'" <<<"$0"' "$ERR" "$RC"
for c in "pod pause" "network reload" "system df" "system reset" "container pause" "image exists"; do
  run_k "$K" $c
  expect "podman's '$c' that kiln lacks: says it is not implemented, exit 2" \
    bash -c '[ "$1" = 2 ] && grep -qF "kiln: error: \`kiln $2\` is not implemented in kiln" <<<"$0"' "$ERR" "$RC" "$c"
done
run_k "$K" system
expect "bare group: its help on stdout, missing command on stderr, exit 2 (podman: same words)" \
  bash -c '[ "$2" = 2 ] && grep -q "^Usage: kiln system COMMAND" <<<"$0" && grep -q "^  info" <<<"$0" &&
           grep -qxF "kiln: error: missing command '"'"'kiln system COMMAND'"'"'" <<<"$1"' "$OUT" "$ERR" "$RC"
run_k "$K"
expect "no command at all: help, missing command, exit 2" \
  bash -c '[ "$2" = 2 ] && grep -q "^Usage: kiln " <<<"$0" && grep -qxF "kiln: error: missing command '"'"'kiln COMMAND'"'"'" <<<"$1"' "$OUT" "$ERR" "$RC"

run_k "$K" ps --bavard --since
expect "unknown flag: one line naming it, then where to look (podman's wording), exit 2" \
  [ "$ERR" = "kiln: error: unknown flag: --bavard
See 'kiln ps --help'" -a "$RC" = 2 ]
if has_podman; then
  P=$(cd / && podman ps --bavard --since 2>&1)
  expect "unknown flag: same words as podman after the prefix" [ "$(sed 's/podman/kiln/g' <<<"${P#Error: }")" = "${ERR#kiln: error: }" ]
else
  tap_skip "podman not installed: unknown flag compared"
fi
run_k "$K" --bavard
expect "unknown global flag" [ "$ERR" = "kiln: error: unknown flag: --bavard
See 'kiln --help'" -a "$RC" = 2 ]
run_k "$K" images -z
expect "unknown shorthand flag (podman's wording)" \
  [ "$(head -1 <<<"$ERR")" = "kiln: error: unknown shorthand flag: 'z' in -z" -a "$RC" = 2 ]
run_k "$K" image ls --bavard
expect "unknown flag in a group member names the member" \
  [ "$ERR" = "kiln: error: unknown flag: --bavard
See 'kiln image ls --help'" -a "$RC" = 2 ]
run_k "$K" logs --tail
expect "flag without its value: 'flag needs an argument: --tail'" \
  [ "$(head -1 <<<"$ERR")" = "kiln: error: flag needs an argument: --tail" -a "$RC" = 2 ]
run_k "$K" tag
expect "missing positional: names it and shows the usage line" \
  bash -c '[ "$1" = 2 ] && grep -q "^kiln: error: missing argument: NAMES (usage: kiln tag \[OPTIONS\] SOURCE TARGET \[TARGET...\])" <<<"$0"' "$ERR" "$RC"
run_k "$K" ps extra
expect "an argument to a command that takes none (podman's wording)" \
  [ "$(head -1 <<<"$ERR")" = "kiln: error: \`kiln ps\` takes no arguments" -a "$RC" = 2 ]

# --- help -------------------------------------------------------------------
run_k "$K" run --help
expect "run --help: usage names IMAGE and COMMAND" \
  bash -c 'grep -qxF "Usage: kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]" <<<"$0"' "$OUT"
expect "run --help: an Examples section" bash -c 'grep -qx "Examples:" <<<"$0" && grep -q "^  kiln run " <<<"$0"' "$OUT"
run_k "$K" container --help
expect "container --help lists ls, run, logs, exec" \
  bash -c 'for c in ls run logs exec start stop rm inspect; do grep -q "^  $c\b" <<<"$0" || exit 1; done' "$OUT"
run_k "$K" image ls --help
expect "image ls --help: images' options under the group's name" \
  bash -c 'grep -q "^Usage: kiln image ls \[OPTIONS\]" <<<"$0" && grep -q -- "--quiet" <<<"$0"' "$OUT"
run_k "$K" help run
H1=$OUT
run_k "$K" run --help
expect "'kiln help run' is 'kiln run --help'" [ "$H1" = "$OUT" ]
# Every command: its usage line in --help is the table's, names positionals in
# capitals (no CLI11 lower-case names), and --help exits 0.
bad=""
while IFS=$'\t' read -r path usage; do
  h=$("$K" $path --help 2>&1) || bad="$bad [$path: rc]"
  grep -qxF "Usage: $usage" <<<"$h" || bad="$bad [$path: usage]"
  u=${usage#kiln $path}
  u=${u# \[OPTIONS\]}
  [[ $u =~ [a-z] && $path != *" "* && $u != *COMMAND* ]] && bad="$bad [$path: lower-case positional: $u]"
done < <("$K" __docs commands)
N=$("$K" __docs commands | wc -l)
expect "all $N commands: --help works and shows the usage line with capitalised positionals" [ -z "$bad" ]
[ -n "$bad" ] && echo "$bad" | diag

# --- generated man pages and completion -------------------------------------
MAN=$WORK_ROOT/man1
"$K" __docs man "$MAN"
expect "man pages: one per command (kiln-run.1, kiln-image-ls.1, kiln.1)" \
  [ -f "$MAN/kiln.1" -a -f "$MAN/kiln-run.1" -a -f "$MAN/kiln-image-ls.1" -a -f "$MAN/kiln-logs.1" ]
if command -v groff >/dev/null; then
  R=$(groff -man -Tutf8 -ww "$MAN/kiln-run.1" 2>"$WORK_ROOT/groff.err" | sed 's/.\x08//g')
  expect "kiln-run.1 renders without warnings, with SYNOPSIS, OPTIONS, EXAMPLES" \
    bash -c '[ ! -s "$1" ] && grep -q "kiln run \[OPTIONS\] IMAGE \[COMMAND \[ARG...\]\]" <<<"$0" &&
             grep -q "^OPTIONS" <<<"$0" && grep -q -- "--detach" <<<"$0" && grep -q "^EXAMPLES" <<<"$0"' "$R" "$WORK_ROOT/groff.err"
else
  tap_skip "groff not installed"
fi
"$K" __docs bash >"$WORK_ROOT/kiln.bash"
complete_words() {  # complete_words WORD...: COMPREPLY for the last word
  bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kiln; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$WORK_ROOT/kiln.bash" "$@"
}
expect "bash completion: kiln im<TAB> -> image images import" \
  [ "$(complete_words kiln im | sort | tr '\n' ' ')" = "image images import " ]
expect "bash completion: kiln image l<TAB> -> list load ls" \
  [ "$(complete_words kiln image l | sort | tr '\n' ' ')" = "list load ls " ]
expect "bash completion: kiln run --de<TAB> -> --detach" [ "$(complete_words kiln run --de)" = "--detach" ]
expect "bash completion: kiln --root /x container ls --qu<TAB> -> --quiet" \
  [ "$(complete_words kiln --root /x container ls --qu)" = "--quiet" ]
"$K" __docs zsh >"$WORK_ROOT/_kiln"
"$K" __docs fish >"$WORK_ROOT/kiln.fish"
if command -v zsh >/dev/null; then
  expect "zsh completion parses (zsh -n)" zsh -n "$WORK_ROOT/_kiln"
else
  tap_skip "zsh not installed"
fi
if command -v fish >/dev/null; then
  expect "fish completion parses (fish -n)" fish -n "$WORK_ROOT/kiln.fish"
  F=$(fish -c "source $WORK_ROOT/kiln.fish; complete -C 'kiln image l'" 2>&1 | cut -f1 | sort | tr '\n' ' ')
  expect "fish completion: kiln image l<TAB> -> list load ls" [ "$F" = "list load ls " ]
else
  tap_skip "fish not installed"
  tap_skip "fish not installed"
fi

# --- groups and aliases with a store, as the test user and as root -----------
for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store=$work/store
  k() { kiln_as "$mode" "$store" "$@"; }
  tty_k() {  # tty_k ANSWER ARGS...: kiln ARGS on a terminal as $mode, answering ANSWER
    on_tty "$1" bash -c "$(declare -f as_mode); as_mode \"\$@\"" _ "$mode" env KILN_ROOT="$store" "$KILN_BIN" "${@:2}"
  }
  import_busybox "$mode" "$store" "$work" || { tap_not_ok "$mode: import busybox"; continue; }
  run_k k image ls
  expect "$mode: image ls lists the image as images does" \
    bash -c '[ "$1" = 0 ] && grep -q busybox <<<"$0"' "$OUT" "$RC"
  A=$(k images -q); B=$(k image list -q)
  expect "$mode: image list -q = images -q" [ -n "$A" -a "$A" = "$B" ]
  run_k k image tag busybox bb2
  run_k k image inspect bb2
  expect "$mode: image tag + image inspect" bash -c '[ "$1" = 0 ] && grep -q "\"Architecture\"" <<<"$0"' "$OUT" "$RC"
  run_k k image history busybox
  expect "$mode: image history" [ "$RC" = 0 ]
  run_k k image rm bb2
  expect "$mode: image rm removes the name" bash -c '[ "$0" = 0 ] && ! '"$K"' --root "$1" images 2>/dev/null | grep -q bb2' "$RC" "$store"
  mkdir -p "$work/ctx"; printf 'FROM busybox\nRUN echo built >/built\n' >"$work/ctx/Containerfile"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/ctx"
  run_k k image build -q -t viaimage "$work/ctx"
  expect "$mode: image build (enters the user namespace as build does)" [ "$RC" = 0 ]
  run_k k buildx build -q -t viabuildx "$work/ctx"
  expect "$mode: buildx build = build" [ "$RC" = 0 ]
  run_k k container run --rm viabuildx cat /built
  expect "$mode: container run" [ "$RC" = 0 -a "$OUT" = built ]
  run_k k container run -d --name c1 busybox sh -c 'echo out1; sleep 30'
  sleep 0.5
  run_k k container ls
  expect "$mode: container ls shows the running container" bash -c 'grep -q c1 <<<"$0"' "$OUT"
  A=$(k ps -a -q); B=$(k container ps -a -q); C=$(k container list -a -q)
  expect "$mode: container ps/list = ps" [ -n "$A" -a "$A" = "$B" -a "$A" = "$C" ]
  run_k k container logs c1
  expect "$mode: container logs" [ "$OUT" = out1 ]
  run_k k container exec c1 echo inside
  expect "$mode: container exec" [ "$OUT" = inside ]
  k container rm -f c1 >/dev/null 2>&1
  # logs -t/--since/--until/--tail (podman's flags; times in ctr.log.ts)
  TS_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}) '
  k run -d --name lg busybox sh -c 'echo one; sleep 1.2; echo two; sleep 1.2; echo three; sleep 60' >/dev/null
  for _ in $(seq 100); do k logs lg 2>/dev/null | grep -q three && break; sleep 0.1; done
  run_k k logs lg
  expect "$mode: logs without flags: the raw lines" [ "$OUT" = "one
two
three" ]
  run_k k logs -t lg
  expect "$mode: logs -t: every line starts with an RFC 3339 time (podman's format)" \
    bash -c '[ "$(grep -cE "$1(one|two|three)$" <<<"$0")" = 3 ]' "$OUT" "$TS_RE"
  T2=$(grep ' two$' <<<"$OUT" | cut -d' ' -f1)
  T1=$(grep ' one$' <<<"$OUT" | cut -d' ' -f1)
  T3=$(grep ' three$' <<<"$OUT" | cut -d' ' -f1)
  expect "$mode: logs -t: the times are when the lines were written (1.2 s apart)" \
    python3 -c 'import re,sys,datetime as d
def p(x):
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", x.replace("Z", "+00:00"))
    return d.datetime.fromisoformat(m.group(1) + (m.group(2) or ".0")[:7].ljust(7, "0") + m.group(3))
t = [p(x) for x in sys.argv[1:]]
sys.exit(0 if all(1.0 < (t[i + 1] - t[i]).total_seconds() < 3.0 for i in range(2)) else 1)' "$T1" "$T2" "$T3"
  run_k k logs --since "$T2" lg
  expect "$mode: logs --since TIME (RFC 3339, as -t prints it) keeps the lines from then" [ "$OUT" = "two
three" ]
  run_k k logs --until "$T2" lg
  expect "$mode: logs --until TIME keeps the lines until then" [ "$OUT" = "one
two" ]
  run_k k logs --since 1h --tail 1 -t lg
  expect "$mode: logs --since 1h --tail 1 -t: the last line with its time" \
    bash -c 'grep -qE "$1three$" <<<"$0" && [ "$(wc -l <<<"$0")" = 1 ]' "$OUT" "$TS_RE"
  sleep 1
  run_k k logs --since 500ms lg
  expect "$mode: logs --since 500ms (a duration): nothing written since" [ "$RC" = 0 -a -z "$OUT" ]
  run_k k logs --since 1h --until 1s lg
  expect "$mode: logs --until 1s: everything (all older)" [ "$(wc -l <<<"$OUT")" = 3 ]
  run_k k logs --since yesterday lg
  expect "$mode: logs --since with a bad value: exit 2 naming the value" \
    bash -c '[ "$1" = 2 ] && grep -qF "invalid --since value \"yesterday\"" <<<"$0"' "$ERR" "$RC"
  id=$(k inspect --type container lg | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')
  rm -f "$store/containers/$id/ctr.log.ts"
  run_k k logs -t --since 1s lg
  expect "$mode: a log without ctr.log.ts (an older kiln's): -t prints no time, --since drops nothing" [ "$OUT" = "one
two
three" ]
  k rm -f lg >/dev/null 2>&1
  k run -d --name lf busybox sh -c 'echo a; sleep 1; echo b' >/dev/null
  run_k as_mode "$mode" timeout 20 env KILN_ROOT="$store" "$KILN_BIN" logs -f -t lf
  expect "$mode: logs -f -t follows with times until the container ends" \
    bash -c '[ "$1" = 0 ] && grep -qE "$2a$" <<<"$0" && grep -qE "$2b$" <<<"$0"' "$OUT" "$RC" "$TS_RE"
  k rm -f lf >/dev/null 2>&1
  # prune that asks as podman (on a terminal), container prune, info -D
  k run --name stopped1 busybox true >/dev/null 2>&1
  k volume create keepme >/dev/null; k volume create unused1 >/dev/null
  k run -d --name running1 -v keepme:/data busybox sleep 60 >/dev/null 2>&1
  run_k tty_k n container prune
  expect "$mode: container prune on a terminal asks podman's question; 'n' keeps everything" \
    bash -c '[ "$1" = 0 ] && grep -qxF "WARNING! This will remove all non running containers." <<<"$0" &&
             grep -qF "Are you sure you want to continue? [y/N]" <<<"$0" && '"$K"' --root "$2" ps -a | grep -q stopped1' \
    "$OUT" "$RC" "$store"
  run_k tty_k n volume prune
  expect "$mode: volume prune on a terminal names the volumes it would remove; 'n' keeps them" \
    bash -c '[ "$1" = 0 ] && grep -qF "WARNING! This will remove all volumes not used by at least one container." <<<"$0" &&
             grep -qx unused1 <<<"$0" && ! grep -qx keepme <<<"$0" && '"$K"' --root "$2" volume ls | grep -q unused1' \
    "$OUT" "$RC" "$store"
  run_k tty_k y container prune
  SID=$(k inspect --type container stopped1 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])' 2>/dev/null)
  ST=$(k ps -a --format '{{.Names}}' 2>/dev/null | sort | tr '\n' ' ')
  expect "$mode: container prune, answered y: the stopped containers go (IDs printed), the running one stays" \
    bash -c '[ "$1" = 0 ] && [ "$2" = "running1 " ]' "$OUT" "$RC" "$ST"
  run_k k volume prune -f
  expect "$mode: volume prune -f removes the volumes no container uses, without asking" \
    bash -c '[ "$1" = 0 ] && [ "$0" = unused1 ] && '"$K"' --root "$2" volume ls -q | grep -qx keepme' "$OUT" "$RC" "$store"
  run_k k container prune -f
  expect "$mode: container prune -f with only a running container left removes nothing" [ "$RC" = 0 -a -z "$OUT" ]
  k rm -f running1 >/dev/null 2>&1; k volume rm keepme >/dev/null 2>&1
  run_k k info -D
  expect "$mode: info -D (podman's hidden --debug) is accepted" [ "$RC" = 0 -a -n "$OUT" ]
  # exit status for what does not exist: podman 4.3's, measured here:
  # 125 except rm/rmi/volume rm (1)
  for c in "rm nosuch:1" "container rm nosuch:1" "rmi nosuch:1" "image rm nosuch:1" "volume rm nosuch:1" \
           "stop nosuch:125" "start nosuch:125" "kill nosuch:125" "wait nosuch:125" "logs nosuch:125" \
           "exec nosuch true:125" "inspect nosuch:125" "container inspect nosuch:125" "image inspect nosuch:125" \
           "volume inspect nosuch:125" "tag nosuch x:125" "history nosuch:125" "push nosuch:125"; do
    # shellcheck disable=SC2086
    run_k k ${c%:*}
    expect "$mode: kiln ${c%:*} exits ${c##*:} as podman 4.3 (one error line)" \
      bash -c '[ "$1" = "$2" ] && [ "$(wc -l <<<"$0")" = 1 ] && grep -q "^kiln: error: " <<<"$0"' "$ERR" "$RC" "${c##*:}"
  done
  run_k k system info
  expect "$mode: system info" [ "$RC" = 0 -a -n "$OUT" ]
  run_k k system prune
  expect "$mode: system prune" [ "$RC" = 0 ]
  rm -rf "$work" 2>/dev/null || true
done
tap_done
