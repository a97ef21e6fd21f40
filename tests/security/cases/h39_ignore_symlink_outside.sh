#!/usr/bin/env bash
# H39 (ignore file as a link, issue [2.1]): a .containerignore or
# .dockerignore in the context that is a symlink to a file outside the
# context was read. It is not followed: exit 2 naming the file. A link that
# stays inside the context still works.
MODE=$1 WORK=$2
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
cd "$WORK" || exit 1
store=$WORK/store
import_busybox "$MODE" "$store" "$WORK" || { echo "cannot import the busybox base" >&2; exit 1; }
printf 'FROM busybox\nCOPY . /c\n' >Containerfile; chmod 644 Containerfile
mkdir -p outside && echo 'a.txt' >outside/ignore && chmod -R a+rX outside
for name in .containerignore .dockerignore; do
  rm -rf ctx; mkdir -p ctx && echo a >ctx/a.txt
  ln -s "$WORK/outside/ignore" "ctx/$name"
  chmod -R a+rX ctx
  kiln_as "$MODE" "$store" build -q -f Containerfile ctx >/dev/null 2>err
  rc=$?
  if [ $rc -ne 2 ] || ! grep -q "$name: a symlink that leads out of the build context" err; then
    cat err >&2; echo "$name -> outside: exit $rc, want 2 naming the link" >&2; exit 1
  fi
  # ../ relative links out are the same
  rm "ctx/$name"; ln -s ../outside/ignore "ctx/$name"
  kiln_as "$MODE" "$store" build -q -f Containerfile ctx >/dev/null 2>err
  rc=$?
  [ $rc -eq 2 ] || { cat err >&2; echo "$name -> ../outside: exit $rc, want 2" >&2; exit 1; }
done
# Inside the context: followed.
rm -rf ctx; mkdir -p ctx/lists && echo a >ctx/a.txt && echo a.txt >ctx/lists/ignore
ln -s lists/ignore ctx/.dockerignore; chmod -R a+rX ctx
kiln_as "$MODE" "$store" build -q -f Containerfile ctx >/dev/null 2>err ||
  { cat err >&2; echo "a link inside the context must be read" >&2; exit 1; }
exit 0
