#!/usr/bin/env bash
# H40: stage graph errors -- a cycle between two stages (COPY --from),
# a stage that copies from itself, `FROM ${UNDEFINED}` -- end `kiln build` with exit 2 and an error
# naming the Containerfile line, before any step runs (a RUN in an
# independent first stage must not run).
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
have_busybox || { cat "$WORK/err" >&2; exit 1; }
mkdir -p "$WORK/ctx"
w() { printf "$2" >"$WORK/ctx/$1"; }
w cycle 'FROM busybox AS first\nRUN echo RAN-A-STEP\nFROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /x /x\n'
w self 'FROM busybox AS first\nRUN echo RAN-A-STEP\nFROM busybox AS b\nCOPY --from=b /bin/sh /x\n'
w undefined 'FROM busybox AS first\nRUN echo RAN-A-STEP\nFROM ${UNDEFINED}\nRUN true\n'
own "$WORK/ctx"
for f in cycle self undefined; do
  run_k build --no-cache -f "$WORK/ctx/$f" -t "localhost/h40-$f" "$WORK/ctx"
  [ "$RC" -ne 0 ] || { show >&2; not_contained "$f: the build succeeded"; }
  case $RC in 1 | 2) ;; *) show >&2; not_contained "$f: exit $RC" ;; esac
  grep -Eq "$f:[0-9]+" "$WORK/err" || { show >&2; not_contained "$f: the error names no line"; }
  ! grep -q RAN-A-STEP "$WORK/out" "$WORK/err" || { show >&2; not_contained "$f: a step ran before the graph error"; }
  expect_short_error 4
done
prune_check
