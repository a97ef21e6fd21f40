#!/bin/bash
# The ready-to-copy CI definitions of docs/ci.md (issue [2.10]): every YAML
# block parses; the Kubernetes Job keeps the security settings the page
# promises (hostUsers: false, not privileged, the kiln image, the store on
# a volume); and `kubectl apply --dry-run=client` accepts it. Without a
# cluster kubectl cannot fetch the OpenAPI schema, so --validate is not
# possible: kubectl's API discovery is answered by tests/ci/kube_stub.py on
# loopback and the dry run uses --validate=false (kind, apiVersion and YAML
# are checked, field types are not). With $KUBECONFIG naming a reachable
# cluster the dry run uses it with --validate=true instead.
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

if ! command -v kubectl >/dev/null; then
  tap_skip "kubectl is not installed"
elif [ -n "${KUBECONFIG:-}" ] && timeout 20 kubectl version >/dev/null 2>&1; then
  check "kubectl apply --dry-run=client --validate=true on a reachable cluster" \
    timeout 60 kubectl apply --dry-run=client --validate=true -f "$work/job.yaml"
else
  python3 "$(dirname "$0")/kube_stub.py" >"$work/port" 2>"$work/stub.err" &
  stub=$!
  trap 'kill $stub 2>/dev/null; cleanup_workdir' EXIT
  wait_for 10 test -s "$work/port"
  server=http://127.0.0.1:$(cat "$work/port")
  out=$(KUBECONFIG=/dev/null timeout 60 kubectl --server="$server" apply --dry-run=client --validate=false \
    -f "$work/job.yaml" 2>&1)
  check "kubectl apply --dry-run=client (no cluster: discovery stub, --validate=false)" \
    [ "$out" = "job.batch/kiln-build created (dry run)" ]
  [ "$out" = "job.batch/kiln-build created (dry run)" ] || echo "$out" | diag
  # The check can fail: an object kubectl does not know is refused.
  sed 's/^kind: Job/kind: Jobb/' "$work/job.yaml" >"$work/bad.yaml"
  check "... and refuses an unknown kind" bash -c "! KUBECONFIG=/dev/null timeout 60 kubectl --server='$server' apply --dry-run=client --validate=false -f '$work/bad.yaml' >/dev/null 2>&1"
  out=$(KUBECONFIG=/dev/null timeout 60 kubectl --server="$server" apply --dry-run=client --validate=true -f "$work/job.yaml" 2>&1)
  check "... --validate=true needs the cluster's OpenAPI schema (not possible offline)" \
    grep -q "failed to download openapi" <<<"$out"
fi
tap_done
