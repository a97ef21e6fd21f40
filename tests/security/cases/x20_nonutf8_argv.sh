#!/usr/bin/env bash
# x20 (no H-id): bytes that are not UTF-8 in `kiln run`'s command and -e
# (file names and values on Linux are bytes): the container gets them as
# they are, or kiln refuses with a clear error -- never an abort.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
have_busybox || { cat "$WORK/err" >&2; exit 1; }
run_k run --rm --network none busybox echo $'\xff\xfe'
case $RC in
  0) [ "$(cat "$WORK/out")" = $'\xff\xfe' ] || { show >&2; not_contained "run echo: the bytes were changed"; } ;;
  1 | 2 | 125) expect_short_error 2 ;;
  *) show >&2; not_contained "kiln run with a non-UTF-8 argument: exit $RC" ;;
esac
run_k run --rm --network none -e $'A=\xff' busybox sh -c 'echo "$A"'
case $RC in
  0) [ "$(cat "$WORK/out")" = $'\xff' ] || { show >&2; not_contained "run -e: the bytes were changed"; } ;;
  1 | 2 | 125) expect_short_error 2 ;;
  *) show >&2; not_contained "kiln run -e with a non-UTF-8 value: exit $RC" ;;
esac
prune_check
