#!/usr/bin/env bash
# H36 (parser seeds): a line over 65535 bytes, an unterminated heredoc,
# `${a:-${a:-...}}` nested 10,000 deep, a NUL byte, an invalid JSON form,
# a BOM before a bad line, 10,000 continuation lines, non-UTF-8 bytes in a
# RUN: `kiln parse`, `kiln build --print-graph` and `kiln build` end with an
# error naming the Containerfile and line (exit 2) or accept the file --
# never a crash or a hang. A BOM at the start is
# accepted, as BuildKit does.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK" <<'PY'
import sys, os
work = sys.argv[1]
def w(name, data):
    os.makedirs("%s/%s" % (work, name), exist_ok=True)
    open("%s/%s/Containerfile" % (work, name), "wb").write(data)
w("longline", b"FROM busybox\nRUN echo " + b"a" * 70000 + b"\n")
w("heredoc", b"FROM busybox\nRUN <<EOF\necho never ends\n")
w("nested", b"FROM busybox\nARG a=1\nRUN echo " + b"${a:-" * 10000 + b"x" + b"}" * 10000 + b"\n")
w("nul", b"FROM busybox\nRUN echo a\0b\nRUN echo \0\n")
w("badjson", b'FROM busybox\nRUN ["a",\n')
w("bombad", b"\xef\xbb\xbfFROM busybox\nBOGUS x\n")
w("bomok", b"\xef\xbb\xbfFROM busybox\nRUN true\n")
w("continuations", b"FROM busybox\nRUN echo \\\n" + b"\\\n" * 10000 + b"end\n")
w("escape", b"FROM busybox\n# escape=`\nRUN echo a`\n")
w("nonutf8", b"FROM busybox\nRUN echo \xff\xfe\n")
PY
own "$WORK"
have_busybox || { cat "$WORK/err" >&2; exit 1; }  # FROM busybox resolves locally, never on the network
for name in longline heredoc nested nul badjson bombad continuations escape bomok nonutf8; do
  f=$WORK/$name/Containerfile
  for how in parse print-graph build; do
    case $how in
      parse) run_k parse "$f" ;;
      print-graph) run_k build --print-graph -f "$f" "$WORK/$name" ;;
      # a real build (with a RUN step) of what parses: bounded in time
      build) run_k_timeout 20 build --no-cache -f "$f" "$WORK/$name"
             [ "$RC" -ne 124 ] && [ "$RC" -ne 137 ] || { show >&2; not_contained "build $name: hangs (killed after 20 s)"; } ;;
    esac
    case $RC in
      0) ;;
      1 | 2) grep -Eq "Containerfile:[0-9]+" "$WORK/err" || { show >&2; not_contained "$how $name: the error names no line"; }
             [ $how = build ] || expect_short_error 4 ;;  # a failing RUN shows its output
      *) show >&2; not_contained "$how $name: exit $RC (crash or timeout)" ;;
    esac
    echo "$how $name: $RC" >>"$WORK/verdicts"
  done
done
cat "$WORK/verdicts" >&2
for name in longline heredoc bombad; do
  grep -q "parse $name: 2" "$WORK/verdicts" || not_contained "parse $name must be refused with exit 2"
done
grep -q "parse bomok: 0" "$WORK/verdicts" || not_contained "a BOM at the start of the file must be accepted"
exit 0
