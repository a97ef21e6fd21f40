#!/bin/bash
# Proves that scripts/check-layering.py can fail: plants one violation of each
# kind in a copy of the tree and checks that each is listed with its file:line
# (TAP). The clean tree itself is the meson test `layering`.
set -u
src=${KILN_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check=$src/scripts/check-layering.py

copy_tree() {
  rm -rf "$tmp/t" && mkdir -p "$tmp/t" &&
    cp -a "$src/src" "$src/frontend" "$src/include" "$src/docs" "$tmp/t/"
}
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; sed 's/^/# /' "$tmp/out"; }

echo "1..9"
copy_tree
if python3 "$check" "$tmp/t" >"$tmp/out" 2>&1; then ok "the unmodified copy passes"; else not_ok "the unmodified copy passes"; fi

# plant FILE LINE-TEXT EXPECTED-REGEX DESCRIPTION: appends LINE-TEXT to FILE,
# expects exit 1 and a line "FILE:N: ..." matching the regex.
plant() {
  local file=$1 text=$2 want=$3 what=$4
  copy_tree
  printf '%s\n' "$text" >>"$tmp/t/$file"
  local line
  line=$(wc -l <"$tmp/t/$file")
  python3 "$check" "$tmp/t" >"$tmp/out" 2>&1
  local rc=$?
  if [ "$rc" = 1 ] && grep -Eq "^$file:$line: .*$want" "$tmp/out"; then ok "$what"; else
    echo "rc=$rc, wanted $file:$line: ...$want" >>"$tmp/out"; not_ok "$what"; fi
}

plant src/run/records.cpp '#include "engine/build.h"' 'internal header of engine, which run may not use' \
  "run including an engine internal header is listed"
plant src/store/store.cpp '#include "kiln/run.h"' 'store may not use run' \
  "store including the run module's public header is listed"
plant src/cli/cmd_parse.cpp '#include "ast.h"' 'neither kiln/' \
  "a frontend internal included by bare name from the CLI is listed"
plant src/cli/cmd_ps.cpp '#include "store/internal.h"' 'internal header of store \(not in its "shares"' \
  "the CLI including a store internal header is listed"
plant frontend/lexer.cpp '#include "kiln/store.h"' 'frontend may not use store' \
  "the pure frontend including the store is listed"
plant include/kiln/sandbox.h '#include "kiln/store.h"' 'sandbox may not use store' \
  "a public header including a header its module may not use is listed"
plant src/run/meson.build 'x = engine_dep' 'run may not use engine' \
  "run linking the engine (meson) is listed"

# A new directory under src/ that the table does not know.
copy_tree
mkdir "$tmp/t/src/podman" && echo '// x' >"$tmp/t/src/podman/x.cpp"
python3 "$check" "$tmp/t" >"$tmp/out" 2>&1
if [ $? = 1 ] && grep -q '^src/podman: directory is not a module' "$tmp/out"; then ok "an unknown module directory is listed"
else not_ok "an unknown module directory is listed"; fi
exit $failed
