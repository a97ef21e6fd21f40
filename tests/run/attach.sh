#!/usr/bin/env bash
# kiln attach with stdin (issue [2.7], docs/run.md), as podman 4.3 does it:
# stdin goes to a container created with -i, an end of input closes the
# container's stdin, --no-stdin leaves it open, the detach keys (ctrl-p,ctrl-q
# by default, --detach-keys) leave the container running, --sig-proxy=false.
# The real binary, as the unprivileged test user and as root (TAP).
set -u
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
ptyrun="$KILN_SOURCE_ROOT/tests/run/ptyrun.py"

for mode in $(test_modes); do
  begin_mode "$mode" || continue
  status() { k inspect --format '{{.State.Status}}' "$1" 2>&1; }

  # 1. input through a pipe; its end closes the container's stdin
  k run -d -i --name ai1 --network none busybox sh -c 'while read x; do echo got:$x; done; echo eof; exit 4' \
    >/dev/null 2>"$work/err" || diag <"$work/err"
  sleep 0.3
  check "$mode: a -i container waits for input while nobody is attached ($(status ai1))" test "$(status ai1)" = running
  out=$( (echo a; sleep 0.5; echo b) | timeout 20 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store attach ai1" 2>&1); rc=$?
  check "$mode: attach sends piped input, the end of it closes stdin, exit code is the container's ($rc: $(echo $out))" \
    test "$rc" -eq 4 -a "$(echo $out)" = "got:a got:b eof"

  # 2. --no-stdin leaves the stdin open (podman 4.3 closes it: docs/compatibility.md); a later attach feeds it
  k run -d -i --name ai2 --network none busybox cat >/dev/null 2>"$work/err" || diag <"$work/err"
  # (--sig-proxy=false: timeout's SIGTERM ends attach, not the container)
  echo not-sent | timeout 2 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store attach --no-stdin --sig-proxy=false ai2" >/dev/null 2>&1; rc=$?
  check "$mode: attach --no-stdin stays attached, the container runs on ($rc, $(status ai2))" \
    test "$rc" -eq 124 -a "$(status ai2)" = running
  out=$(echo sent | timeout 20 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store attach ai2" 2>&1); rc=$?
  check "$mode: ... and nothing of its input reached the container; the next attach's did ($rc: $(echo $out))" \
    test "$rc" -eq 0 -a "$out" = sent
  check "$mode: ... cat ended at the end of input ($(status ai2))" test "$(status ai2)" = exited

  # 3. detach keys on a terminal (-it): the container runs on, attach exits 0
  k run -d -it --name at3 --network none busybox sh >/dev/null 2>"$work/err" || diag <"$work/err"
  sleep 0.3
  as_mode "$mode" python3 "$ptyrun" --steps 1 'echo mark-$((6*7))\r' 1 '\x10' 0.3 '\x11' -- "$work/pty1" 20 \
    env KILN_ROOT="$store" "$KILN_BIN" attach at3 >/dev/null 2>&1; rc=$?
  check "$mode: ctrl-p,ctrl-q detaches from a -it container: exit 0, still running ($rc, $(status at3))" \
    test "$rc" -eq 0 -a "$(status at3)" = running
  check "$mode: ... what was typed ran in its shell ($(tr -d '\r' <"$work/pty1" | grep -c mark-42))" \
    grep -q 'mark-42' "$work/pty1"
  # The whole sequence in one write (podman 4.3 misses it; docker does not)
  as_mode "$mode" python3 "$ptyrun" --steps 1 'echo again-$((6*8))\r\x10\x11' -- "$work/pty2" 20 \
    env KILN_ROOT="$store" "$KILN_BIN" attach at3 >/dev/null 2>&1; rc=$?
  check "$mode: keys typed with the command in one write detach too ($rc, $(status at3))" \
    test "$rc" -eq 0 -a "$(status at3)" = running
  wait_for 5 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs at3 | grep -q again-48"
  check "$mode: ... the command before the keys ran ($(k logs at3 2>&1 | grep -c again-48))" \
    bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs at3 | grep -q again-48"
  # A ctrl-p not followed by ctrl-q is passed on: here it is followed by a command
  as_mode "$mode" python3 "$ptyrun" --steps 1 'exit 6\r' -- "$work/pty3" 20 \
    env KILN_ROOT="$store" "$KILN_BIN" attach at3 >/dev/null 2>&1; rc=$?
  check "$mode: attached again, the shell's exit code is attach's ($rc, $(status at3))" \
    test "$rc" -eq 6 -a "$(status at3)" = exited

  # 4. --detach-keys on piped input to a -i container; invalid keys
  k run -d -i --name ai4 --network none busybox sh -c 'while read x; do echo got:$x; done' >/dev/null 2>"$work/err"
  out=$(printf 'one\n\030atwo\n' | timeout 20 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store attach --detach-keys ctrl-x,a ai4" 2>&1); rc=$?
  check "$mode: --detach-keys ctrl-x,a on piped input: exit 0, the container runs on ($rc, $(status ai4))" \
    test "$rc" -eq 0 -a "$(status ai4)" = running
  wait_for 3 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store logs ai4 | grep -q got:one"
  out=$(k logs ai4 2>&1)
  check "$mode: ... input before the keys arrived, input after them did not ($(echo $out))" test "$(echo $out)" = "got:one"
  out=$(printf 'p\020x\n' | timeout 20 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store attach ai4" 2>&1); rc=$?
  check "$mode: a ctrl-p not followed by ctrl-q is sent as typed ($rc: $(echo "$out" | od -An -c | tr -s ' '))" \
    test "$rc" -eq 0 -a "$out" = "got:p$(printf '\020')x"
  k attach --detach-keys ctrl-1 ai1 >/dev/null 2>"$work/err"; rc=$?
  check "$mode: invalid --detach-keys: exit 2 naming them ($rc: $(cat "$work/err"))" \
    bash -c "[ $rc -eq 2 ] && grep -q 'invalid detach keys ctrl-1' '$work/err'"

  # 5. a container without -i: stdin is not read, output and exit code as before
  k run -d --name an5 --network none busybox sh -c 'read x; echo read:$x; sleep 1; echo done5; exit 3' >/dev/null 2>&1
  out=$(echo ignored | timeout 20 bash -c "$(declare -f kiln_as as_mode); kiln_as $mode $store attach an5" 2>&1); rc=$?
  check "$mode: a container without -i gets no input from attach ($rc: $(echo $out))" \
    bash -c "[ $rc -eq 3 ] && ! grep -q ignored <<<'$out' && grep -q done5 <<<'$out'"

  # 6. --sig-proxy=false: Ctrl-C ends attach, not the container
  k run -d -i --name ai6 --network none busybox sh -c 'trap "echo got-int; exit 3" INT; while :; do sleep 0.2; done' >/dev/null 2>&1
  sleep 0.3
  as_mode "$mode" env KILN_ROOT="$store" "$KILN_BIN" attach --sig-proxy=false ai6 </dev/null >"$work/a6.out" 2>&1 &
  apid=$!
  sleep 1
  kpid=$(kiln_pid_under "$apid")
  kill -INT "$kpid" 2>/dev/null
  wait "$apid"; rc=$?
  check "$mode: attach --sig-proxy=false: SIGINT ends attach, the container runs on ($rc, $(status ai6))" \
    bash -c "[ $rc -ne 0 ] && [ '$(status ai6)' = running ] && ! grep -q got-int '$work/a6.out'"

  k rm -f $(k ps -a -q) >/dev/null 2>&1
  rm -rf "$work" 2>/dev/null
done
tap_done
