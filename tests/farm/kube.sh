#!/usr/bin/env bash
# kiln farm's Kubernetes driver (issue [2.10] item 3, docs/farm.md
# "Kubernetes driver"):
#  - `farm create --driver kubernetes --driver-opt ...` and what it refuses;
#  - `farm build --dry-run` prints a ConfigMap holding the context and one
#    Job per platform with the promised settings; job names are a hash of
#    the inputs (the same twice, another when a file changes);
#  - kubectl (Debian's, 1.32) accepts the objects with
#    `apply --dry-run=client --validate=strict` against
#    tests/farm/kube_api_stub.py, which serves Kubernetes' own OpenAPI
#    (v1.13.0's swagger.json from golang-k8s-kube-openapi-dev, plus the
#    upstream definitions of PodSpec.hostUsers and
#    SecurityContext.seccompProfile, which are newer); the stub's log shows
#    the schema was fetched, and broken objects (unknown field, wrong type)
#    are REJECTED (and, against a stub advertising fieldValidation as a
#    current server does, that kubectl 1.32 then checks nothing itself);
#    $KILN_TEST_KUBECTL runs it with another kubectl (Debian 12's 1.20);
#  - with $KILN_TEST_KUBECONFIG naming a reachable cluster, the same objects
#    go to that cluster with --dry-run=server --validate=strict (a current
#    API server validates fields itself, and kubectl then skips its own
#    client-side check, so a client dry run would prove nothing there);
#  - the build itself through a stand-in `kubectl` (a script that answers
#    like a cluster whose Jobs completed or failed): the index holds the
#    digests the Jobs' termination messages report (pushed for real to a
#    loopback registry with `kiln push --digestfile`), and a failed Job
#    fails the build, deletes the other Jobs and pushes no index.
# Runs as the test user and as root (the farm parts need no privileges).
set -u
. "$(dirname "$0")/../integration/lib.sh"
SWAGGER=/usr/share/gocode/src/k8s.io/kube-openapi/pkg/schemaconv/testdata/swagger.json
require_tool "${KILN_TEST_KUBECTL:-kubectl}" "kubectl 1.32 validates the objects"
require_tool docker-registry "Debian package docker-registry"
[ -f "$SWAGGER" ] || { tap_skip "$SWAGGER is missing (Debian package golang-k8s-kube-openapi-dev)"; tap_done; exit 0; }

temp_workdir farm-kube
start_registry "$work" || { tap_not_ok "start docker-registry"; diag <"$work/registry.log"; tap_done; exit; }
# The stand-in API server (one for both modes: it holds no state).
python3 "$(dirname "$0")/kube_api_stub.py" "$SWAGGER" "$work/stub.log" >"$work/stub.port" 2>"$work/stub.err" &
STUB_PID=$!
trap '[ "$BASHPID" = "$$" ] && kill $STUB_PID 2>/dev/null; cleanup_workdir' EXIT
wait_for 30 test -s "$work/stub.port" || { tap_not_ok "the API stub starts"; diag <"$work/stub.err"; tap_done; exit; }
KUBE_STUB_FIELD_VALIDATION=1 python3 "$(dirname "$0")/kube_api_stub.py" "$SWAGGER" >"$work/stub-fv.port" \
  2>"$work/stub-fv.err" &
STUB_FV_PID=$!
trap '[ "$BASHPID" = "$$" ] && kill $STUB_PID $STUB_FV_PID 2>/dev/null; cleanup_workdir' EXIT
wait_for 30 test -s "$work/stub-fv.port" || { tap_not_ok "the second API stub starts"; diag <"$work/stub-fv.err"; tap_done; exit; }
API_FV=http://127.0.0.1:$(cat "$work/stub-fv.port")
API=http://127.0.0.1:$(cat "$work/stub.port")
# $KILN_TEST_KUBECTL picks another kubectl (e.g. Debian 12's kubernetes-client
# 1.20, which knows --validate=true but not =strict).
KUBECTL=${KILN_TEST_KUBECTL:-kubectl}
VALIDATE=--validate=strict
"$KUBECTL" apply --help 2>/dev/null | grep -q "strict" || VALIDATE=--validate=true
echo "# $("$KUBECTL" version --client 2>/dev/null | head -n1), $VALIDATE" >&2
kube_validate() {  # FILE: kubectl's client dry run with validation against the stub
  KUBECONFIG=/dev/null timeout 120 "$KUBECTL" --server="$API" apply --dry-run=client "$VALIDATE" -f "$1" 2>&1
}

# The stand-in kubectl for the build's control flow: answers like a cluster
# whose Jobs completed (the push container's termination message is
# $FAKE_KUBE_DIR/digest.JOB), failed ($FAKE_KUBE_DIR/fail.JOB holds the
# build container's message) or still run ($FAKE_KUBE_DIR/running.JOB),
# or cannot be reached while they run ($FAKE_KUBE_DIR/getfail); a Job
# failed in an earlier build exists before it ($FAKE_KUBE_DIR/prevfail.JOB);
# logs every call. Only `farm build` (not the
# validation above) ever runs it.
mkdir -p "$work/bin"
cat >"$work/bin/kubectl" <<'PY'
#!/usr/bin/env python3
import json, os, sys
d = os.environ["FAKE_KUBE_DIR"]
args = [a for a in sys.argv[1:] if not a.startswith(("--kubeconfig=", "--context=", "--namespace="))]
open(f"{d}/calls", "a").write(" ".join(args) + "\n")
failed = lambda job: os.path.exists(f"{d}/fail.{job}")
if args[0] == "apply":
    import yaml
    for doc in yaml.safe_load_all(sys.stdin.read()):
        if doc:
            print(f"{doc['kind'].lower()}/{doc['metadata']['name']} created")
elif args[:2] == ["get", "jobs"]:
    if "--ignore-not-found" in args:  # the Jobs that exist before the build
        names = [a for a in args[2:] if a.startswith("kiln-farm-") and os.path.exists(f"{d}/prevfail.{a}")]
        if names:
            print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [{"metadata": {"name": n}, "status": {
                "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}} for n in names]}))
        sys.exit(0)
    if os.path.exists(f"{d}/getfail"):
        sys.exit("The connection to the server 127.0.0.1:6443 was refused")
    names = [a for a in args[2:] if a.startswith("kiln-farm-")]
    items = [{"metadata": {"name": n}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"} if failed(n) else
        {"type": "Complete", "status": "True"}] if not os.path.exists(f"{d}/running.{n}") else []}}
        for n in names]
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
elif args[:2] == ["get", "pods"]:
    job = args[args.index("-l") + 1].split("=", 1)[1]
    if failed(job):
        st = {"initContainerStatuses": [{"name": "build", "state": {"terminated": {
            "exitCode": 2, "message": open(f"{d}/fail.{job}").read()}}}]}
    else:
        st = {"initContainerStatuses": [{"name": "build", "state": {"terminated": {"exitCode": 0}}}],
              "containerStatuses": [{"name": "push", "state": {"terminated": {
                  "exitCode": 0, "message": open(f"{d}/digest.{job}").read()}}}]}
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [{"status": st}]}))
PY
chmod 755 "$work/bin" "$work/bin/kubectl"

# holds DESCRIPTION CONDITION: a TAP line for a shell condition (&&, !, ...)
holds() { if eval "$2"; then tap_ok "$1"; else tap_not_ok "$1"; return 1; fi; }

for mode in $(test_modes); do
  d=$(make_workdir "$mode")
  s=$d/store
  cfg=$d/config
  k() { as_mode "$mode" env XDG_CONFIG_HOME="$cfg" KILN_ROOT="$s" "$KILN_BIN" "$@"; }
  ctx=$d/ctx
  as_mode "$mode" mkdir -p "$ctx/sub"
  as_mode "$mode" sh -c "printf 'FROM busybox\nCOPY . /app\n' >'$ctx/Containerfile'; echo hello >'$ctx/sub/hello.txt';
    printf '#!/bin/sh\necho run\n' >'$ctx/run.sh'; chmod 755 '$ctx/run.sh'; printf '\\000\\377binary' >'$ctx/blob.bin'"

  # --- farm create / ls and what they refuse
  check "[$mode] farm create --driver kubernetes" \
    k farm create k8s --driver kubernetes --driver-opt image=registry.example/tools/kiln:1 \
      --driver-opt namespace=builds --driver-opt "nodeselector=pool=build;disk=ssd" --driver-opt secret=reg-auth
  out=$(k farm ls --format '{{.Name}} {{.Driver}} {{.Connections}}' 2>&1)
  check "[$mode] farm ls shows the driver and cluster" [ "$out" = "k8s kubernetes kubernetes://(current context)/builds" ]
  [ "$out" = "k8s kubernetes kubernetes://(current context)/builds" ] || echo "$out" | diag
  k farm create nok8s --driver kubernetes >"$d/err" 2>&1
  check_refused "[$mode] a Kubernetes farm needs the kiln image" $? "--driver-opt image=" "$d/err"
  k farm create bad --driver kubernetes --driver-opt image=x ssh://a@b >"$d/err" 2>&1
  check_refused "[$mode] a Kubernetes farm has no nodes" $? "has no nodes" "$d/err"
  k farm create bad --driver kubernetes --driver-opt image=x --driver-opt replicas=2 >"$d/err" 2>&1
  check_refused "[$mode] an unknown --driver-opt is refused" $? "unknown key replicas" "$d/err"
  k farm create bad --driver kubernetes --driver-opt image=x --driver-opt nodeselector=kubernetes.io/arch=arm64 \
    >"$d/err" 2>&1
  check_refused "[$mode] nodeselector may not set the arch (each Job sets its platform's)" $? \
    "kubernetes.io/arch is set per Job" "$d/err"
  k farm create sshfarm ssh://nobody@127.0.0.1 >/dev/null 2>&1
  k farm build --farm sshfarm --dry-run -t "$REG/x" "$ctx" >"$d/err" 2>&1
  check_refused "[$mode] --dry-run is for Kubernetes farms" $? "has SSH nodes" "$d/err"

  # --- the objects
  build_args=(--farm k8s --platforms linux/amd64,linux/arm64 -t registry.example/team/app:1.0
              --cache-to registry.example/team/cache --cache-from registry.example/team/cache --build-arg V=1)
  k farm build --dry-run "${build_args[@]}" "$ctx" >"$d/objects.yaml" 2>"$d/err"
  check "[$mode] farm build --dry-run prints the objects" [ $? = 0 ]
  python3 - "$d/objects.yaml" "$ctx" >"$d/checks.tap" 2>&1 <<'PY'
import base64, json, os, re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ctx = sys.argv[2]
def check(what, good):
    print(("ok" if good else "not ok") + " - " + what)
kinds = [d["kind"] for d in docs]
check("one ConfigMap and a Job per platform", kinds == ["ConfigMap", "Job", "Job"])
cm, jobs = docs[0], docs[1:]
files = {}
for root, _, names in os.walk(ctx):
    for n in names:
        p = os.path.join(root, n)
        files[os.path.relpath(p, ctx)] = (open(p, "rb").read(), os.stat(p).st_mode & 0o777)
items = {}
for j in jobs:
    for v in j["spec"]["template"]["spec"]["volumes"]:
        if "configMap" in v:
            check(f"{j['metadata']['annotations']['kiln-farm/platform']}: the Job mounts the ConfigMap", v["configMap"]["name"] == cm["metadata"]["name"])
            items = {i["path"]: i for i in v["configMap"]["items"]}
got = {p[len("context/"):]: (base64.b64decode(cm["binaryData"][i["key"]]), i["mode"]) for p, i in items.items()}
check("the ConfigMap holds every file of the context, bytes and modes", got == files)
names = [j["metadata"]["name"] for j in jobs]
check("job names are kiln-farm- and 16 hex digits, one per platform",
      all(re.fullmatch(r"kiln-farm-[0-9a-f]{16}", n) for n in names) and len(set(names)) == 2)
for j, (plat, arch) in zip(jobs, [("linux/amd64", "amd64"), ("linux/arm64", "arm64")]):
    pod = j["spec"]["template"]["spec"]
    cs = pod["initContainers"] + pod["containers"]
    check(f"{plat}: namespace builds", j["metadata"]["namespace"] == "builds")
    check(f"{plat}: nodeSelector kubernetes.io/arch={arch} and the farm's own labels",
          pod["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": arch, "pool": "build", "disk": "ssd"})
    check(f"{plat}: hostUsers is false", pod["hostUsers"] is False)
    check(f"{plat}: no container is privileged", all(c["securityContext"]["privileged"] is False for c in cs))
    check(f"{plat}: every container runs the kiln image", all(c["image"] == "registry.example/tools/kiln:1" for c in cs))
    check(f"{plat}: a failed pod fails the Job (backoffLimit 0, restartPolicy Never)",
          j["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never")
    build, push = pod["initContainers"][0]["args"], pod["containers"][0]["args"]
    check(f"{plat}: kiln build --platform {plat} with the build args and per-platform cache refs",
          build[:3] == ["build", "--platform", plat] and "--build-arg=V=1" in build
          and f"--cache-to=registry.example/team/cache:{plat.replace('/', '-')}" in build
          and f"--cache-from=registry.example/team/cache:{plat.replace('/', '-')}" in build)
    auth = [v for v in pod["volumes"] if v["name"] == "registry-auth"]
    check(f"{plat}: the registry Secret is both kiln's --authfile",
          auth and auth[0]["secret"]["secretName"] == "reg-auth"
          and "--authfile=/kiln-farm-auth/config.json" in build and "--authfile=/kiln-farm-auth/config.json" in push)
    check(f"{plat}: kiln push reports its digest in the termination message",
          push[:3] == ["push", "--digestfile", "/dev/termination-log"]
          and push[-1] == f"docker://registry.example/team/app:{j['metadata']['name']}")
PY
  while read -r line; do
    case $line in ok*) tap_ok "[$mode] ${line#ok - }" ;; *) tap_not_ok "[$mode] ${line#not ok - }" ;; esac
  done <"$d/checks.tap"
  [ "$(grep -c '^ok' "$d/checks.tap")" -ge 20 ] || { tap_not_ok "[$mode] the object checks ran"; diag <"$d/checks.tap"; }
  jobs1=$(grep -o '"kiln-farm-[0-9a-f]\{16\}"' "$d/objects.yaml" | sort -u)
  k farm build --dry-run "${build_args[@]}" "$ctx" >"$d/objects2.yaml" 2>&1
  check "[$mode] the same inputs give the same objects (idempotent retries)" cmp -s "$d/objects.yaml" "$d/objects2.yaml"
  as_mode "$mode" sh -c "echo changed >'$ctx/sub/hello.txt'"
  k farm build --dry-run "${build_args[@]}" "$ctx" >"$d/objects3.yaml" 2>&1
  jobs3=$(grep -o '"kiln-farm-[0-9a-f]\{16\}"' "$d/objects3.yaml" | sort -u)
  holds "[$mode] a changed file gives other job names" '[ -n "$jobs1" ] && [ -z "$(comm -12 <(echo "$jobs1") <(echo "$jobs3"))" ]'

  # --- contexts the driver cannot send
  as_mode "$mode" ln -s hello.txt "$ctx/sub/link"
  k farm build --dry-run "${build_args[@]}" "$ctx" >"$d/err" 2>&1
  check_refused "[$mode] a symlink in the context is refused, named" $? "sub/link is a symbolic link" "$d/err"
  as_mode "$mode" rm "$ctx/sub/link"
  as_mode "$mode" sh -c "head -c 800000 /dev/zero >'$ctx/big'"
  k farm build --dry-run "${build_args[@]}" "$ctx" >"$d/err" 2>&1
  check_refused "[$mode] a context over the ConfigMap limit is refused" $? "at most 1 MiB" "$d/err"
  as_mode "$mode" rm "$ctx/big"
  k farm build --dry-run --farm k8s -t registry.example/team/app "$ctx" >"$d/err" 2>&1
  check_refused "[$mode] a Kubernetes farm needs --platforms" $? "needs --platforms" "$d/err"
  k farm build --dry-run --farm k8s --platforms linux -t registry.example/team/app "$ctx" >"$d/err" 2>&1
  check_refused "[$mode] a platform without an architecture is refused" $? "expected OS/ARCH" "$d/err"

  # --- kubectl validates them against Kubernetes' OpenAPI schema
  : >"$work/stub.log"
  out=$(kube_validate "$d/objects.yaml")
  n=$(grep -c "created (dry run)" <<<"$out")
  check "[$mode] kubectl apply --dry-run=client $VALIDATE accepts the ConfigMap and both Jobs" [ "$n" = 3 ]
  [ "$n" = 3 ] || echo "$out" | diag
  check "[$mode] ... after fetching the OpenAPI v2 schema it validates with" grep -q "^GET /openapi/v2 " "$work/stub.log"
  bad() {  # DESCRIPTION PYTHON-EDIT EXPECTED-ERROR
    python3 - "$d/objects.yaml" "$d/bad.yaml" "$2" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
job = docs[1]
pod = job["spec"]["template"]["spec"]
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(job))
PY
    local out
    out=$(kube_validate "$d/bad.yaml")
    if [ $? != 0 ] && grep -qF -- "$3" <<<"$out"; then tap_ok "[$mode] kubectl rejects $1"; else
      tap_not_ok "[$mode] kubectl rejects $1"; echo "$out" | diag; fi
  }
  bad "a wrong type (hostUsers: \"false\")" 'pod["hostUsers"] = "false"' 'invalid type for io.k8s.api.core.v1.PodSpec.hostUsers'
  bad "args as a string" 'pod["containers"][0]["args"] = "push"' 'invalid type for io.k8s.api.core.v1.Container.args'
  bad "a container without a name" 'del pod["containers"][0]["name"]' 'missing required field "name"'
  bad "an unknown field (spec.backofLimit)" 'job["spec"]["backofLimit"] = 0' 'unknown field "backofLimit"'
  if [ "$VALIDATE" = --validate=strict ]; then
    # Why a real cluster gets a server-side dry run instead: when the server
    # validates fields itself, kubectl 1.32 checks nothing on the client.
    out=$(KUBECONFIG=/dev/null timeout 120 "$KUBECTL" --server="$API_FV" apply --dry-run=client --validate=strict \
      -f "$d/bad.yaml" 2>&1)
    check "[$mode] (a server advertising fieldValidation: kubectl's client dry run lets the unknown field through)" \
      grep -q "created (dry run)" <<<"$out"
  fi

  # --- the build, through the stand-in kubectl: two real images pushed with
  # --digestfile stand for what the Jobs pushed; their digests are the Jobs'
  # termination messages.
  import_busybox "$mode" "$s" "$work" || tap_not_ok "[$mode] import busybox"
  as_mode "$mode" mkdir -p "$d/ctx2" "$d/fake"
  as_mode "$mode" sh -c "printf 'FROM busybox\nCOPY hello.txt /\n' >'$d/ctx2/Containerfile'; echo two >'$d/ctx2/hello.txt'"
  k build -q -t second "$d/ctx2" >/dev/null 2>"$d/err" || { tap_not_ok "[$mode] build a second image"; diag <"$d/err"; }
  k push -q --tls-verify=false --digestfile "$d/dig1" busybox "docker://$REG/team/app-$mode:seed1" 2>"$d/err"
  k push -q --tls-verify=false --digestfile "$d/dig2" second "docker://$REG/team/app-$mode:seed2" 2>>"$d/err"
  reg_digest() { curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/team/app-$mode/manifests/$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'; }
  dig1=$(cat "$d/dig1" 2>/dev/null); dig2=$(cat "$d/dig2" 2>/dev/null)
  holds "[$mode] kiln push --digestfile writes the digest the registry has" \
    '[ -n "$dig1" ] && [ "$dig1" = "$(reg_digest seed1)" ] && [ "$dig2" = "$(reg_digest seed2)" ] && [ "$dig1" != "$dig2" ]'
  [ -n "$dig1" ] || diag <"$d/err"
  k push --digestfile "$d/dig3" busybox oci-archive:"$d/x.tar" >"$d/err" 2>&1
  check_refused "[$mode] --digestfile is for docker:// destinations" $? "is not a docker:// destination" "$d/err"
  k farm create stand-in --driver kubernetes --driver-opt image=registry.example/tools/kiln:1 >/dev/null
  real_args=(--farm stand-in --platforms linux/amd64,linux/arm64 -t "$REG/team/app-$mode:1.0" --tls-verify=false)
  # jobs_for TAG: the target REG/team/app-MODE:TAG, and its Jobs' names in job[]
  jobs_for() {
    real_args[5]="$REG/team/app-$mode:$1"
    mapfile -t job < <(k farm build --dry-run "${real_args[@]}" "$ctx" 2>"$d/err" | python3 -c \
      'import sys,yaml; [print(d["metadata"]["name"]) for d in yaml.safe_load_all(sys.stdin) if d and d["kind"]=="Job"]')
  }
  jobs_for 1.0
  as_mode "$mode" sh -c "echo '$dig1' >'$d/fake/digest.${job[0]}'; echo '$dig2' >'$d/fake/digest.${job[1]}'"
  kf() { as_mode "$mode" env PATH="$work/bin:$PATH" FAKE_KUBE_DIR="$d/fake" XDG_CONFIG_HOME="$cfg" KILN_ROOT="$s" "$KILN_BIN" "$@"; }
  index=$(kf farm build "${real_args[@]}" "$ctx" 2>"$d/build.err")
  check "[$mode] farm build through kubectl: applies the objects, waits, pushes the index" [ $? = 0 ]
  grep -q "^apply -f -" "$d/fake/calls" 2>/dev/null || tap_not_ok "[$mode] kubectl apply was run"
  python3 - "$REG" "team/app-$mode" "$index" "$dig1" "$dig2" >"$d/index.tap" 2>&1 <<'PY'
import json, sys, urllib.request
reg, repo, index, d1, d2 = sys.argv[1:]
req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/1.0",
                             headers={"Accept": "application/vnd.oci.image.index.v1+json"})
with urllib.request.urlopen(req) as r:
    got = r.headers["Docker-Content-Digest"]
    doc = json.load(r)
m = [(x["digest"], x["platform"]["architecture"]) for x in doc["manifests"]]
print(("ok" if got == index else "not ok") + f" - the index's digest is what farm build printed ({got} vs {index})")
print(("ok" if m == [(d1, "amd64"), (d2, "arm64")] else "not ok") + f" - the index lists exactly the digests the Jobs reported: {m}")
PY
  while read -r line; do
    case $line in ok*) tap_ok "[$mode] ${line#ok - }" ;; *) tap_not_ok "[$mode] ${line#not ok - }" ;; esac
  done <"$d/index.tap"
  grep -q "^ok" "$d/index.tap" || { tap_not_ok "[$mode] the index was read"; diag <"$d/index.tap"; diag <"$d/build.err"; }
  # A failed Job: the build fails naming it, the other Job is deleted, no index.
  jobs_for 2.0
  as_mode "$mode" sh -c "touch '$d/fake/running.${job[0]}'; echo 'kiln: error: RUN make: exit status 2' >'$d/fake/fail.${job[1]}'"
  kf farm build "${real_args[@]}" "$ctx" >/dev/null 2>"$d/build.err"
  rc=$?
  holds "[$mode] a failed Job fails the build, naming the job, platform and the container's message" \
    '[ $rc != 0 ] && grep -q "job ${job[1]} (linux/arm64) failed: BackoffLimitExceeded.*RUN make: exit status 2.*no index pushed" "$d/build.err"'
  [ $rc != 0 ] || diag <"$d/build.err"
  check "[$mode] ... deletes the Job still running" grep -q "^delete job --ignore-not-found --wait=false ${job[0]}" "$d/fake/calls"
  grep -q "^delete job --ignore-not-found --wait=false ${job[0]}" "$d/fake/calls" || diag <"$d/fake/calls"
  check "[$mode] ... and pushes no index" [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: application/vnd.oci.image.index.v1+json" "http://$REG/v2/team/app-$mode/manifests/2.0")" = 404 ]

  # A retry: a Job that failed in an earlier build is deleted and runs again.
  jobs_for 4.0
  as_mode "$mode" sh -c "echo '$dig1' >'$d/fake/digest.${job[0]}'; echo '$dig2' >'$d/fake/digest.${job[1]}'; touch '$d/fake/prevfail.${job[1]}'"
  kf farm build "${real_args[@]}" "$ctx" >/dev/null 2>"$d/build.err"
  rc=$?
  holds "[$mode] a retry deletes the Job that failed before, applies it again and pushes the index" \
    '[ $rc = 0 ] && grep -q "^delete job ${job[1]} --wait=true" "$d/fake/calls" && ! grep -q "^delete job ${job[0]}" "$d/fake/calls" \
    && [ "$(curl -s -o /dev/null -w "%{http_code}" -H "Accept: application/vnd.oci.image.index.v1+json" "http://$REG/v2/team/app-$mode/manifests/4.0")" = 200 ]' \
    || { diag <"$d/build.err"; tail -4 "$d/fake/calls" | diag; }
  # Ctrl-C while the Jobs run deletes them; no index.
  jobs_for 5.0
  as_mode "$mode" sh -c "touch '$d/fake/running.${job[0]}' '$d/fake/running.${job[1]}'"
  kf farm build "${real_args[@]}" "$ctx" >/dev/null 2>"$d/build.err" &
  bg=$!
  wait_for 60 grep -q "^get jobs ${job[0]} ${job[1]} -o json" "$d/fake/calls"
  kill -INT "$(kiln_pid_under $bg)" 2>/dev/null
  wait $bg
  rc=$?
  holds "[$mode] SIGINT while the Jobs run deletes them and pushes no index" \
    '[ $rc != 0 ] && grep -q "^delete job --ignore-not-found --wait=false ${job[0]} ${job[1]}" "$d/fake/calls" \
    && [ "$(curl -s -o /dev/null -w "%{http_code}" -H "Accept: application/vnd.oci.image.index.v1+json" "http://$REG/v2/team/app-$mode/manifests/5.0")" = 404 ]' \
    || { diag <"$d/build.err"; tail -3 "$d/fake/calls" | diag; }

  if [ "$mode" = root ]; then  # the same in both modes, and 10 s long
    touch "$d/fake/getfail"
    real_args[5]="$REG/team/app-$mode:3.0"
    kf farm build "${real_args[@]}" "$ctx" >/dev/null 2>"$d/build.err"
    rc=$?
    holds "[$mode] kubectl get failing 5 times in a row ends the build, no index" \
      '[ $rc != 0 ] && [ "$(grep -c "trying again" "$d/build.err")" = 4 ] && grep -q "5 times in a row.*no index pushed" "$d/build.err" \
      && [ "$(curl -s -o /dev/null -w "%{http_code}" -H "Accept: application/vnd.oci.image.index.v1+json" "http://$REG/v2/team/app-$mode/manifests/3.0")" = 404 ]'
    [ $rc != 0 ] || diag <"$d/build.err"
  fi

  # --- the real cluster, when there is one
  if [ -n "${KILN_TEST_KUBECONFIG:-}" ] && timeout 20 kubectl --kubeconfig="$KILN_TEST_KUBECONFIG" version >/dev/null 2>&1; then
    k farm create real --driver kubernetes --driver-opt image=registry.example/tools/kiln:1 >/dev/null
    k farm build --farm real --dry-run --platforms linux/amd64,linux/arm64 -t registry.example/team/app "$ctx" \
      >"$d/real.yaml"
    out=$(timeout 120 kubectl --kubeconfig="$KILN_TEST_KUBECONFIG" apply --dry-run=server --validate=strict \
      -f "$d/real.yaml" 2>&1)
    n=$(grep -c "created (server dry run)\|configured (server dry run)\|unchanged (server dry run)" <<<"$out")
    check "[$mode] the cluster accepts the objects (--dry-run=server --validate=strict)" [ "$n" = 3 ]
    [ "$n" = 3 ] || echo "$out" | diag
    python3 -c 'import json,sys,yaml; d=[x for x in yaml.safe_load_all(open(sys.argv[1])) if x][1]; d["spec"]["backofLimit"]=0; print(json.dumps(d))' \
      "$d/real.yaml" >"$d/realbad.json"
    ! timeout 120 kubectl --kubeconfig="$KILN_TEST_KUBECONFIG" apply --dry-run=server --validate=strict \
      -f "$d/realbad.json" >"$d/err" 2>&1
    check "[$mode] ... and rejects an unknown field" grep -q backofLimit "$d/err"
  else
    tap_skip "[$mode] no cluster (set KILN_TEST_KUBECONFIG to a reachable cluster's kubeconfig to validate server-side)"
  fi
done
tap_done
