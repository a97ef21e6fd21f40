#!/bin/bash
# The ready-to-copy CI definitions of docs/ci.md (issue [2.10]): every YAML
# block parses; the Kubernetes Job keeps the security settings the page
# promises (hostUsers: false, not privileged, the kiln image, the store on
# a volume); and `kubectl apply --dry-run=client --validate=strict` accepts
# it against tests/farm/kube_api_stub.py, a loopback stand-in API server
# serving Kubernetes' OpenAPI schema (docs/farm.md "Kubernetes driver" says
# which and what kubectl fetches), and refuses a broken copy. With
# $KILN_TEST_KUBECONFIG naming a reachable cluster the dry run goes there
# instead, server-side.
. "$(dirname "$0")/../integration/lib.sh"
temp_workdir ci-defs
DOC=$KILN_SOURCE_ROOT/docs/ci.md

python3 - "$DOC" "$work" <<'PY' >"$work/blocks.tap"
import re, sys, yaml
doc, work = sys.argv[1], sys.argv[2]
text = open(doc).read()
n = 0
for m in re.finditer(r"^### ([^\n]*)\n(?:(?!#)[^\n]*\n)*?```yaml\n(.*?)```", text, re.M | re.S):
    title, block = m.group(1), m.group(2)
    try:
        obj = yaml.safe_load(block)
        print(f"ok - {title}: the YAML parses")
    except yaml.YAMLError as e:
        print(f"not ok - {title}: {e}".replace("\n", " "))
        continue
    if title == "Kubernetes Job":
        open(f"{work}/job.yaml", "w").write(block)
        spec = obj["spec"]["template"]["spec"]
        pods = spec.get("initContainers", []) + spec["containers"]
        kiln = [c for c in pods if "kiln" in c["image"]]
        checks = {
            "hostUsers is false": spec.get("hostUsers") is False,
            "no container is privileged": all(not c.get("securityContext", {}).get("privileged") for c in pods),
            "kiln runs from the kiln image": len(kiln) == 2,
            "the store is a volume": all(any(v["mountPath"] == "/var/lib/kiln" for v in c["volumeMounts"]) for c in kiln),
            "the build uses the registry cache": any("--cache-from" in " ".join(c["args"]) and "--cache-to" in " ".join(c["args"]) for c in kiln),
        }
        for what, good in checks.items():
            print(f"{'ok' if good else 'not ok'} - Kubernetes Job: {what}")
    if title == "Tekton Task":
        print(f"{'ok' if obj['kind'] == 'Task' and obj['spec']['steps'] else 'not ok'} - Tekton Task: a Task with steps")
    if title.startswith("GitLab"):
        print(f"{'ok' if '--cache-to' in str(obj) else 'not ok'} - GitLab CI: exports the cache")
    if title == "GitHub Actions":
        print(f"{'ok' if '--cache-from' in str(obj) else 'not ok'} - GitHub Actions: imports the cache")
    # Every kiln command line of the block: "kiln CMD ..." in scripts, or a
    # container's args whose first word is a kiln command.
    lines = []
    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("args"), list) and "kiln" in str(o.get("image", "")) + str(obj.get("spec", {}).get("stepTemplate", {}).get("image", "")):
                lines.append(" ".join(str(a) for a in o["args"]))
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
        elif isinstance(o, str):
            for m in re.finditer(r"\bkiln ((?:build|push|login|info)\b[^|;&\n]*)", o):
                lines.append(m.group(1))
    walk(obj)
    with open(f"{work}/flags", "a") as out:
        for line in lines:
            words = line.split()
            for w in words[1:]:
                if w.startswith("--"):
                    out.write(f"{title.split(' (')[0]}\t{words[0]}\t{w.split('=')[0]}\n")
PY
while read -r line; do
  case $line in ok*) tap_ok "${line#ok - }" ;; *) tap_not_ok "${line#not ok - }" ;; esac
done <"$work/blocks.tap"
[ "$(grep -c '' "$work/blocks.tap")" -ge 10 ] || tap_not_ok "docs/ci.md has the GitLab, GitHub, Tekton and Kubernetes blocks"
# Every kiln flag the definitions use exists (kiln CMD --help lists it).
while IFS=$'\t' read -r where cmd flag; do
  if "$KILN_BIN" "$cmd" --help 2>/dev/null | grep -qE -- "(^|[ ,])$flag([ ,=]|$)"; then
    tap_ok "$where: kiln $cmd $flag exists"
  else
    tap_not_ok "$where: kiln $cmd $flag: not in kiln $cmd --help"
  fi
done < <(sort -u "$work/flags")
[ "$(cut -f3 "$work/flags" | sort -u | grep -c .)" -ge 3 ] || tap_not_ok "the definitions' kiln flags were found"

SWAGGER=/usr/share/gocode/src/k8s.io/kube-openapi/pkg/schemaconv/testdata/swagger.json
if ! command -v kubectl >/dev/null; then
  tap_skip "kubectl is not installed"
elif [ -n "${KILN_TEST_KUBECONFIG:-}" ] && timeout 20 kubectl --kubeconfig="$KILN_TEST_KUBECONFIG" version >/dev/null 2>&1; then
  # A current API server validates fields itself (and kubectl then skips
  # its own check): a server-side dry run (docs/farm.md "Kubernetes driver").
  check "kubectl apply --dry-run=server --validate=strict on a reachable cluster" \
    timeout 60 kubectl --kubeconfig="$KILN_TEST_KUBECONFIG" apply --dry-run=server --validate=strict -f "$work/job.yaml"
elif [ ! -f "$SWAGGER" ]; then
  tap_skip "$SWAGGER is missing (Debian package golang-k8s-kube-openapi-dev)"
else
  python3 "$KILN_SOURCE_ROOT/tests/farm/kube_api_stub.py" "$SWAGGER" "$work/stub.log" >"$work/port" 2>"$work/stub.err" &
  stub=$!
  trap 'kill $stub 2>/dev/null; cleanup_workdir' EXIT
  wait_for 30 test -s "$work/port"
  server=http://127.0.0.1:$(cat "$work/port")
  validate() { KUBECONFIG=/dev/null timeout 120 kubectl --server="$server" apply --dry-run=client --validate=strict -f "$1" 2>&1; }
  out=$(validate "$work/job.yaml")
  check "kubectl apply --dry-run=client --validate=strict against Kubernetes' OpenAPI schema (tests/farm/kube_api_stub.py)" \
    [ "$out" = "job.batch/kiln-build created (dry run)" ]
  [ "$out" = "job.batch/kiln-build created (dry run)" ] || echo "$out" | diag
  check "... which kubectl fetched to validate" grep -q "^GET /openapi/v2 " "$work/stub.log"
  # The check can fail: an unknown field and an unknown kind are refused.
  sed 's/^  backoffLimit:/  backofLimit:/' "$work/job.yaml" >"$work/bad.yaml"
  check "... and refuses an unknown field" grep -q 'unknown field "backofLimit"' <<<"$(validate "$work/bad.yaml")"
  sed 's/^kind: Job/kind: Jobb/' "$work/job.yaml" >"$work/bad.yaml"
  check "... and an unknown kind" bash -c "! KUBECONFIG=/dev/null timeout 60 kubectl --server='$server' apply --dry-run=client --validate=strict -f '$work/bad.yaml' >/dev/null 2>&1"
fi
tap_done
