# Assertions for a case's `expect` file (tests/integration/build_cases.sh,
# tests/buildkit/run.sh). Source it; expect files run in the flattened image
# dir $OUT (ociflat.py: list, config.json, manifest.json, root/). Each
# failure is printed and counted in FAILS.
FAILS=0
fail() { echo "    $*" >&2; FAILS=$((FAILS + 1)); }
entry() { grep -P "^\Q$1\E\t" "$OUT/list" | head -1; }
exists() { [ -n "$(entry "$1")" ] || fail "missing $1"; }
absent() { [ -z "$(entry "$1")" ] || fail "unexpected $1: $(entry "$1")"; }
kind() { local k; k=$(entry "$1" | cut -f2); [ "$k" = "$2" ] || fail "$1: type '$k', want '$2'"; }
is_file() { kind "$1" file; }
is_dir() { kind "$1" dir; }
is_symlink() { kind "$1" symlink; local t; t=$(entry "$1" | cut -f5); [ "$t" = "$2" ] || fail "$1: link to '$t', want '$2'"; }
mode() { local m; m=$(entry "$1" | cut -f3); [ "$m" = "$2" ] || fail "$1: mode $m, want $2"; }
owner() { local o; o=$(entry "$1" | cut -f4); [ "$o" = "$2" ] || fail "$1: owner $o, want $2"; }
content() {
  local want got
  want=$(printf '%s\n' "$2"); got=$(cat "$OUT/root$1" 2>/dev/null)
  [ -f "$OUT/root$1" ] || { fail "no file $1"; return; }
  [ "$got" = "$want" ] || fail "$1: content '$got', want '$want'"
}
# cfg PATH JSON: the config field at PATH (dot-separated, e.g. config.Env) equals JSON (missing = null)
cfg() {
  python3 - "$OUT/config.json" "$1" "$2" <<'PY' || fail "config $2 mismatch"
import json, sys
c = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    if isinstance(c, list) and k.isdigit():
        c = c[int(k)] if int(k) < len(c) else None
    else:
        c = c.get(k) if isinstance(c, dict) else None
want = json.loads(sys.argv[3])
if c != want:
    print(f"    config {sys.argv[2]} = {json.dumps(c)}, want {json.dumps(want)}", file=sys.stderr)
    sys.exit(1)
PY
}
has_env() {
  python3 - "$OUT/config.json" "$1" <<'PY' || fail "config Env lacks $1"
import json, sys
env = (json.load(open(sys.argv[1])).get("config") or {}).get("Env") or []
sys.exit(0 if sys.argv[2] in env else 1)
PY
}
layers() { local n; n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["layers"]))' "$OUT/manifest.json"); [ "$n" = "$1" ] || fail "$n layers, want $1"; }

# exact PATH TEXT: the file's bytes are exactly TEXT, with printf %b escapes (\n, \t, \\)
exact() {
  [ -f "$OUT/root$1" ] || { fail "no file $1"; return; }
  local want got
  want=$(printf '%b' "$2"; echo .); got=$(cat "$OUT/root$1"; echo .)
  [ "$got" = "$want" ] || fail "$1: bytes $(printf '%s' "${got%.}" | od -An -c | tr -s ' ' | head -c 200), want $(printf '%s' "${want%.}" | od -An -c | tr -s ' ' | head -c 200)"
}
# content_has PATH TEXT: the file's content contains TEXT (a fixed string)
content_has() {
  [ -f "$OUT/root$1" ] || { fail "no file $1"; return; }
  grep -qF -- "$2" "$OUT/root$1" || fail "$1 lacks '$2': '$(head -c 300 "$OUT/root$1")'"
}
# content_lacks PATH TEXT: the file exists and does not contain TEXT
content_lacks() {
  [ -f "$OUT/root$1" ] || { fail "no file $1"; return; }
  ! grep -qF -- "$2" "$OUT/root$1" || fail "$1 has '$2'"
}
# log_has TEXT / log_lacks TEXT: the build's output (stdout and stderr, in $LOG) contains TEXT or not
log_has() { grep -qF -- "$1" "${LOG:-/dev/null}" || fail "build output lacks '$1'"; }
log_lacks() { ! grep -qF -- "$1" "${LOG:-/dev/null}" || fail "build output has '$1'"; }
