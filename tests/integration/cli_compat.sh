#!/usr/bin/env bash
# The podman compatibility table (docs/cli-compat.md) against the real
# binary, so that the table cannot drift (TAP):
#   - every "supported"/"differs" row: `kiln COMMAND --help` lists each
#     spelling of the flag, and the row's check below runs through the real
#     binary with podman's spelling, as the test user and as root;
#   - every "not yet" row: kiln refuses the flag or command (exit 2 / 125);
#   - a row without a check, or a check without a row, fails.
# Everything stays on this machine: a docker-registry on loopback for the
# push/login/cache rows.
set -u
export KILN_TEST_USER=${KILN_TEST_USER:-kiln-test}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

DOC="$KILN_SOURCE_ROOT/docs/cli-compat.md"
KILN_TMP_ERR=$(mktemp /tmp/kiln-compat-err.XXXXXX)
trap 'rm -f "$KILN_TMP_ERR"' EXIT

# ROWS: "command<TAB>flag<TAB>status" for every table row.
mapfile -t ROWS < <(python3 - "$DOC" <<'PY'
import re, sys
for line in open(sys.argv[1], encoding="utf-8"):
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    if len(cells) != 4 or cells[0] in ("command", "") or set(cells[0]) <= set("-"):
        continue
    print("\t".join(cells[:3]))
PY
)

case $(uname -m) in
  x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;;
esac

# status CONTAINER: its state as `inspect --format` prints it
status() { k container inspect --format '{{.State.Status}}' "$1"; }
# with CONTAINER-CMD... : runs the rest with $id set, then removes the container
cleanup_id() { [ -n "${id:-}" ] && k rm -f "$id" >/dev/null 2>&1; return 0; }

# The behaviour check of each row, keyed "command|flag" as in the table;
# run with `eval` in a subshell (k, $w, $mode, $REG set), success = ok.
declare -A CHECK
CHECK["run|—"]='[ "$(k run --rm busybox echo hi)" = hi ]'
CHECK["run|-d, --detach"]='id=$(k run -d busybox sleep 30) && [ "$(status $id)" = running ] && id2=$(k run --detach busybox sleep 30) && [ "$(status $id2)" = running ]; r=$?; k rm -f $id $id2 >/dev/null 2>&1; exit $r'
CHECK["run|-i, --interactive"]='[ "$(echo in | k run --rm -i busybox cat)" = in ] && [ "$(echo in | k run --rm --interactive busybox cat)" = in ]'
CHECK["run|-t, --tty"]='k run --rm -t busybox tty </dev/null | grep -q "^/dev/pts/" && k run --rm --tty busybox tty </dev/null | grep -q "^/dev/pts/"'
CHECK["run|--rm"]='k run --rm --name rmx busybox true && ! k container inspect rmx >/dev/null 2>&1'
CHECK["run|--name"]='k run --name nm busybox true && [ "$(k ps -a --filter name=nm --format "{{.Names}}")" = nm ]; r=$?; k rm nm >/dev/null 2>&1; exit $r'
CHECK["run|-e, --env"]='[ "$(k run --rm -e A=1 --env B=2 busybox sh -c "echo \$A\$B")" = 12 ]'
CHECK["run|--env-file"]='printf "A=3\n# c\n" >"$w/envf" && [ "$(k run --rm --env-file "$w/envf" busybox sh -c "echo \$A")" = 3 ]'
CHECK["run|--env-host"]='[ "$(as_mode $mode env KILN_ROOT="$store" HOSTV=h "$KILN_BIN" run --rm --env-host busybox sh -c "echo \$HOSTV")" = h ]'
CHECK["run|-v, --volume"]='mkdir -p "$w/vd" && echo f >"$w/vd/f" && chmod -R a+rwX "$w/vd" && [ "$(k run --rm -v "$w/vd:/d:ro" --volume cvol:/n busybox sh -c "cat /d/f; touch /n/x && echo ok")" = "f
ok" ]'
CHECK["run|--mount"]='[ "$(k run --rm --mount type=tmpfs,target=/m busybox grep -c " /m tmpfs" /proc/mounts)" = 1 ]'
CHECK["run|--tmpfs"]='k run --rm --tmpfs /t:size=1m busybox grep -q " /t tmpfs rw,nosuid,nodev.*size=1024k" /proc/mounts'
CHECK["run|-p, --publish"]='p=$(free_port); id=$(k run -d -p 127.0.0.1:$p:80 busybox httpd -f -p 80 -h /etc) && fetch $p /passwd | grep -q "^root:"; r=$?; cleanup_id; exit $r'
CHECK["run|-P, --publish-all"]='id=$(k run -d -P exposes httpd -f -p 80 -h /etc) && hp=$(k port $id 80) && fetch ${hp#*:} /passwd | grep -q "^root:"; r=$?; cleanup_id; exit $r'
CHECK["run|-u, --user"]='[ "$(k run --rm -u 65534 busybox id -u)" = 65534 ] && [ "$(k run --rm --user 65534:65534 busybox id -g)" = 65534 ]'
CHECK["run|-w, --workdir"]='[ "$(k run --rm -w /tmp busybox pwd)" = /tmp ] && [ "$(k run --rm --workdir /etc busybox pwd)" = /etc ]'
CHECK["run|--entrypoint"]='[ "$(k run --rm --entrypoint echo busybox x)" = x ]'
CHECK["run|--network, --net"]='[ "$(k run --rm --network none busybox ls /sys/class/net)" = lo ] && [ "$(k run --rm --net none busybox ls /sys/class/net)" = lo ]'
CHECK["run|--add-host"]='k run --rm --add-host db.example:192.0.2.9 busybox grep -q "^192.0.2.9[[:space:]]db.example$" /etc/hosts'
CHECK["run|--dns"]='[ "$(k run --rm --dns 192.0.2.53 busybox grep nameserver /etc/resolv.conf 2>/dev/null)" = "nameserver 192.0.2.53" ]'
CHECK["run|--dns-search"]='k run --rm --dns-search example.test busybox grep -qx "search example.test" /etc/resolv.conf'
CHECK["run|--dns-option"]='k run --rm --dns-option ndots:2 busybox grep -qx "options ndots:2" /etc/resolv.conf'
CHECK["run|--hostname"]='[ "$(k run --rm --hostname hh busybox hostname)" = hh ]'
CHECK["run|--privileged"]='k run --rm --privileged busybox grep -q "^CapBnd:.*ffffffff" /proc/self/status && ! k run --rm busybox grep -q "^CapBnd:.*ffffffff" /proc/self/status && ! k run --rm --privileged busybox grep -q " /proc/sys " /proc/mounts && k run --rm busybox grep -q " /proc/sys " /proc/mounts'
CHECK["run|--read-only"]='! k run --rm --read-only busybox touch /x 2>/dev/null'
CHECK["run|--init"]='[ "$(k run --rm --init busybox sh -c "echo \$\$")" != 1 ]'
CHECK["run|-l, --label"]='id=$(k create -l a=1 --label b=2 busybox true) && [ "$(k container inspect --format "{{.Config.Labels.a}}{{.Config.Labels.b}}" $id)" = 12 ]; r=$?; cleanup_id; exit $r'
CHECK["run|--label-file"]='printf "f=3\n" >"$w/lf" && id=$(k create --label-file "$w/lf" busybox true) && [ "$(k container inspect --format "{{.Config.Labels.f}}" $id)" = 3 ]; r=$?; cleanup_id; exit $r'
CHECK["run|--annotation"]='id=$(k create --annotation an=v busybox true) && [ "$(k container inspect --format "{{.Config.Annotations.an}}" $id)" = v ]; r=$?; cleanup_id; exit $r'
CHECK["run|--cidfile"]='rm -f "$w/cid"; id=$(k run -d --cidfile "$w/cid" busybox sleep 30) && [ "$(cat "$w/cid")" = "$id" ] && ! k run --rm --cidfile "$w/cid" busybox true 2>/dev/null; r=$?; cleanup_id; exit $r'
CHECK["run|--pull"]='k run --rm --pull=never busybox true && k run --rm --pull missing busybox true && ! k run --rm --pull=never no-such-image true 2>/dev/null'
CHECK["run|--platform"]='k run --rm --platform linux/$ARCH busybox true'
CHECK["run|-m, --memory"]='out=$(k run --rm -m 64m busybox true 2>&1) || grep -q "delegated cgroup" <<<"$out"'
CHECK["run|--cpus"]='out=$(k run --rm --cpus 1 busybox true 2>&1) || grep -q "delegated cgroup" <<<"$out"'
CHECK["run|--pids-limit"]='out=$(k run --rm --pids-limit 50 busybox true 2>&1) || grep -q "delegated cgroup" <<<"$out"'
CHECK["run|--pod"]='k pod create --name ccpod >/dev/null && [ "$(k run --rm --pod ccpod busybox hostname)" = ccpod ]; r=$?; k pod rm -f ccpod >/dev/null; exit $r'
CHECK["pod|—"]='k pod create --name ccp2 >/dev/null && k pod exists ccp2 && [ "$(k pod ps -q --filter name=ccp2 | wc -l)" = 1 ] && k pod rm ccp2 >/dev/null && ! k pod exists ccp2'
CHECK["kube|—"]='k run -d --name cckube --network none busybox sleep 30 >/dev/null && k kube generate cckube | grep -q "^kind: Pod"; r=$?; k rm -f cckube >/dev/null; exit $r'
CHECK["play|—"]='printf "apiVersion: v1\nkind: Pod\nmetadata: {name: ccplay}\nspec:\n  containers:\n  - {name: c, image: busybox, command: [sleep, \"30\"]}\n" >"$w/ccplay.yml" && k play kube --start=false "$w/ccplay.yml" | grep -qx "Pod:" && k kube down "$w/ccplay.yml" | grep -qx "Pods removed:"'
CHECK["generate|—"]='k create --name ccgen --network none busybox true >/dev/null && k generate systemd --name ccgen | grep -q "^ExecStart=.* start ccgen$"; r=$?; k rm -f ccgen >/dev/null; exit $r'
CHECK["network|—"]='k network create cc-net >/dev/null && [ "$(k network ls -q --filter name=cc-net)" = cc-net ] && k network rm cc-net >/dev/null && ! k network exists cc-net'
CHECK["create|—"]='id=$(k create busybox true) && [ "$(status $id)" = created ]; r=$?; cleanup_id; exit $r'
CHECK["start|—"]='id=$(k create busybox sleep 30) && k start $id >/dev/null && [ "$(status $id)" = running ]; r=$?; cleanup_id; exit $r'
CHECK["stop|-t, --time"]='id=$(k run -d busybox sleep 30) && k stop -t 1 $id >/dev/null && [ "$(status $id)" = exited ] && k start $id >/dev/null && k stop --time 1 $id >/dev/null && [ "$(status $id)" = exited ]; r=$?; cleanup_id; exit $r'
CHECK["kill|-s, --signal"]='id=$(k run -d busybox sleep 30) && k kill -s KILL $id >/dev/null && [ "$(k wait $id)" = 137 ] && k start $id >/dev/null && k kill --signal TERM $id >/dev/null && [ "$(k wait $id)" = 143 ]; r=$?; cleanup_id; exit $r'
CHECK["wait|—"]='id=$(k run -d busybox sh -c "exit 3") && [ "$(k wait $id)" = 3 ]; r=$?; cleanup_id; exit $r'
CHECK["rm|-f, --force"]='id=$(k run -d busybox sleep 30) && k rm -f $id >/dev/null && ! k container inspect $id >/dev/null 2>&1 && id=$(k run -d busybox sleep 30) && k rm --force $id >/dev/null && ! k container inspect $id >/dev/null 2>&1'
CHECK["port|—"]='id=$(k run -d -p 127.0.0.1::80 busybox sleep 30) && k port $id | grep -Eq "^80/tcp -> 127\.0\.0\.1:[0-9]+$" && k port $id 80/tcp | grep -Eq "^127\.0\.0\.1:[0-9]+$"; r=$?; cleanup_id; exit $r'
CHECK["port|-a, --all"]='id=$(k run -d -p 127.0.0.1::80 busybox sleep 30) && k port -a | grep -qx $id && k port --all | grep -Eq "^80/tcp -> "; r=$?; cleanup_id; exit $r'
CHECK["port|-l, --latest"]='id=$(k create -p 127.0.0.1::81 busybox true) && k port -l | grep -Eq "^81/tcp -> " && k port --latest 81 | grep -Eq "^127\.0\.0\.1:"; r=$?; cleanup_id; exit $r'
CHECK["ps|-a, --all"]='id=$(k create busybox true) && k ps -a --no-trunc -q | grep -qx $id && k ps --all --no-trunc -q | grep -qx $id && ! k ps --no-trunc -q | grep -qx $id; r=$?; cleanup_id; exit $r'
CHECK["ps|-q, --quiet"]='[ -z "$(k ps -a -q | grep -Ev "^[0-9a-f]{12}$")" ] && [ -z "$(k ps -a --quiet | grep -Ev "^[0-9a-f]{12}$")" ]'
CHECK["ps|-l, --latest"]='id=$(k create busybox true) && [ "$(k ps -l -q --no-trunc)" = $id ] && [ "$(k ps --latest -q --no-trunc)" = $id ]; r=$?; cleanup_id; exit $r'
CHECK["ps|-n, --last"]='[ "$(k ps -n 1 -q | wc -l)" -le 1 ] && [ "$(k ps --last 1 -q | wc -l)" -le 1 ]'
CHECK["ps|--no-trunc"]='[ -z "$(k ps -a -q --no-trunc | grep -Ev "^[0-9a-f]{64}$")" ]'
CHECK["ps|-s, --size"]='k ps -s | head -1 | grep -q SIZE && k ps --size | head -1 | grep -q SIZE'
CHECK["ps|-f, --filter"]='id=$(k create --name filt busybox true) && [ "$(k ps -a -f name=filt --format "{{.Names}}")" = filt ] && [ "$(k ps -a --filter status=created --filter name=filt -q --no-trunc)" = $id ]; r=$?; cleanup_id; exit $r'
CHECK["ps|--sort"]='k ps -a --sort names >/dev/null'
CHECK["ps|--noheading"]='! k ps -a --noheading | grep -q "CONTAINER ID"'
CHECK["ps|--format"]='k ps --format "{{.Names}} {{.Status}}" --filter name=^ex$ | grep -Eq "^ex Up " && k ps --format json | python3 -c "import json,sys; assert isinstance(json.load(sys.stdin), list)"'
CHECK["logs|-f, --follow"]='id=$(k run -d busybox sh -c "echo a; sleep 1; echo b") && [ "$(k logs -f $id | tr "\n" " ")" = "a b " ] && [ "$(k logs --follow $id | tr "\n" " ")" = "a b " ]; r=$?; cleanup_id; exit $r'
CHECK["logs|-t, --timestamps"]='id=$(k run -d busybox echo a) && k wait $id >/dev/null && k logs -t $id | grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+ a$" && k logs --timestamps $id | grep -Eq "T[^ ]+ a$"; r=$?; cleanup_id; exit $r'
CHECK["logs|--since"]='id=$(k run -d busybox echo a) && k wait $id >/dev/null && [ "$(k logs --since 10m $id)" = a ]; r=$?; cleanup_id; exit $r'
CHECK["logs|--until"]='id=$(k run -d busybox echo a) && k wait $id >/dev/null && [ -z "$(k logs --until 2020-01-01 $id)" ]; r=$?; cleanup_id; exit $r'
CHECK["logs|--tail"]='id=$(k run -d busybox sh -c "echo a; echo b") && k wait $id >/dev/null && [ "$(k logs --tail 1 $id)" = b ]; r=$?; cleanup_id; exit $r'
CHECK["exec|-i, --interactive"]='[ "$(echo z | k exec -i ex cat)" = z ] && [ "$(echo z | k exec --interactive ex cat)" = z ]'
CHECK["exec|-t, --tty"]='k exec -t ex tty </dev/null | grep -q "^/dev/pts/" && k exec --tty ex tty </dev/null | grep -q "^/dev/pts/"'
CHECK["exec|-e, --env"]='[ "$(k exec -e Q=1 --env R=2 ex sh -c "echo \$Q\$R")" = 12 ]'
CHECK["exec|-u, --user"]='[ "$(k exec -u 65534 ex id -u)" = 65534 ] && [ "$(k exec --user 65534 ex id -u)" = 65534 ]'
CHECK["exec|-w, --workdir"]='[ "$(k exec -w /etc ex pwd)" = /etc ] && [ "$(k exec --workdir /tmp ex pwd)" = /tmp ]'
CHECK["container inspect|-f, --format"]='[ "$(k container inspect -f "{{.Name}}" ex)" = ex ] && [ "$(k container inspect --format "{{.State.Status}}" ex)" = running ]'
CHECK["images|-a, --all"]='k images -a | grep -q busybox && k images --all | grep -q busybox'
CHECK["images|-q, --quiet"]='k images -q | grep -Eq "^[0-9a-f]{12}$" && [ -z "$(k images --quiet | grep -Ev "^[0-9a-f]{12}$")" ]'
CHECK["images|--no-trunc"]='k images -q --no-trunc | grep -Eq "[0-9a-f]{64}"'
CHECK["images|--digests"]='k images --digests | head -1 | grep -q DIGEST'
CHECK["images|-f, --filter"]='k images -f reference=busybox --format "{{.Repository}}" | grep -q busybox && ! k images --filter reference=busybox --format "{{.Repository}}" | grep -qv busybox'
CHECK["images|--sort"]='k images --sort repository >/dev/null && k images --sort size >/dev/null'
CHECK["images|-n, --noheading"]='k images | head -1 | grep -q REPOSITORY && ! k images -n | grep -q REPOSITORY && ! k images --noheading | grep -q REPOSITORY'
CHECK["images|--format"]='k images --format "{{.Repository}}:{{.Tag}}" | grep -q "busybox:latest$"'
CHECK["build|-t, --tag"]='k build -q -t bt --tag bt2 "$w/b" >/dev/null && k images --format "{{.Repository}}" | grep -q "/bt$" && k images --format "{{.Repository}}" | grep -q "/bt2$"'
CHECK["build|-f, --file"]='cp "$w/b/Containerfile" "$w/b/Other" && k build -q -f "$w/b/Other" "$w/b" >/dev/null && k build -q --file "$w/b/Other" "$w/b" >/dev/null'
CHECK["build|--build-arg"]='k build -q -t ba --build-arg A=7 "$w/b" >/dev/null && [ "$(k run --rm ba cat /a)" = 7 ]'
CHECK["build|--target"]='k build -q -t bg --target one "$w/stages" >/dev/null && [ "$(k run --rm bg cat /s)" = one ]'
CHECK["build|--platform"]='k build -q -t bp --platform linux/$ARCH "$w/b" >/dev/null && [ "$(k inspect --format "{{.Architecture}}" bp)" = $ARCH ]'
CHECK["build|--no-cache"]='k build -q --no-cache "$w/b" >/dev/null'
CHECK["build|--layers"]='k build -q --layers=false "$w/b" >/dev/null'
CHECK["build|--pull"]='k build -q --pull=never "$w/b" >/dev/null && k build -q --pull missing "$w/b" >/dev/null'
CHECK["build|--jobs"]='k build -q --jobs 1 "$w/stages" >/dev/null'
CHECK["build|--label"]='k build -q -t bl --label lk=lv "$w/b" >/dev/null && [ "$(k inspect --format "{{.Config.Labels.lk}}" bl)" = lv ]'
CHECK["build|--annotation"]='k build -q --annotation ak=av "$w/b" >/dev/null'
CHECK["build|--secret"]='k build -q -t bsec --secret id=s,src="$w/secret" "$w/bs" >/dev/null && [ "$(k run --rm bsec cat /got)" = sv ]'
CHECK["build|--ssh"]='k build -q --ssh default="$w/agent.sock" "$w/bssh" >/dev/null'
CHECK["build|--network"]='k build -q --network none "$w/b" >/dev/null'
CHECK["build|--build-context"]='k build -q -t bc --build-context extra="$w/bcx" "$w/bctx" >/dev/null && [ "$(k run --rm bc cat /f)" = extra ]'
CHECK["build|-o, --output"]='k build -q -o type=tar,dest="$w/out.tar" "$w/b" >/dev/null && tar -tf "$w/out.tar" | grep -Eq "^(\./)?a$" && k build -q --output type=local,dest="$w/outdir" "$w/b" >/dev/null && [ -f "$w/outdir/a" ]'
CHECK["build|--iidfile"]='k build -q --iidfile "$w/iid" "$w/b" >/dev/null && grep -q "^sha256:" "$w/iid"'
CHECK["build|--format"]='k build -q -t bdf --format docker "$w/b" >/dev/null'
CHECK["build|--squash"]='k build -q -t bsq --squash "$w/b" >/dev/null && [ "$(k inspect --format "{{len .RootFS.Layers}}" bsq)" = 2 ]'
CHECK["build|--squash-all"]='k build -q -t bsqa --squash-all "$w/b" >/dev/null && [ "$(k inspect --format "{{len .RootFS.Layers}}" bsqa)" = 1 ]'
CHECK["build|--cap-add"]='k build --progress plain --cap-add NET_ADMIN "$w/bcap" 2>&1 | grep -q "CapEff:.*a80435fb"'
CHECK["build|--cap-drop"]='k build --progress plain --cap-drop ALL "$w/bcap" 2>&1 | grep -q "CapEff:.*0000000000000000"'
CHECK["build|--ulimit"]='k build --progress plain --ulimit nofile=100:200 "$w/bcap" 2>&1 | grep -q "^nofile=100$"'
CHECK["build|--env"]='k build -q -t benv --env EK=ev "$w/b" >/dev/null && k inspect --format "{{json .Config.Env}}" benv | grep -q "\"EK=ev\""'
CHECK["build|--unsetenv"]='k build -q -t bunenv --unsetenv PATH "$w/b" >/dev/null && ! k inspect --format "{{json .Config.Env}}" bunenv | grep -q PATH='
CHECK["build|--omit-history"]='k build -q -t bnoh --omit-history "$w/b" >/dev/null && [ "$(k inspect --format "{{len .History}}" bnoh)" = 0 ]'
CHECK["build|--no-hosts"]='printf "FROM busybox\nRUN test -e /etc/hosts && echo has-hosts || echo no-hosts\n" >"$w/bnoh" && k build --progress plain --no-hosts -f "$w/bnoh" "$w/b" 2>&1 | grep -q "^no-hosts$"'
CHECK["build|--dns"]='printf "FROM busybox\nRUN grep nameserver /etc/resolv.conf\n" >"$w/bdns" && k build --progress plain --dns 192.0.2.54 -f "$w/bdns" "$w/b" 2>&1 | grep -q "^nameserver 192.0.2.54$"'
CHECK["build|--manifest"]='k build -q --manifest cclist "$w/b" >/dev/null && k manifest inspect cclist | grep -q "\"manifests\""'
CHECK["build|--add-host"]='k build --progress plain --add-host compat.test:10.9.8.7 "$w/bcap" 2>&1 | grep -q "^10.9.8.7.compat.test$"'
CHECK["build|--shm-size"]='k build --progress plain --shm-size 8m "$w/bcap" 2>&1 | grep -Eq "^shm +8192 "'
CHECK["build|--device"]='k build -q --device /dev/zero "$w/b" >/dev/null'
CHECK["build|--security-opt"]='k build --progress plain --security-opt no-new-privileges "$w/bcap" 2>&1 | grep -q "NoNewPrivs:.*1"'
CHECK["build|--userns"]='k build -q --userns host "$w/b" >/dev/null && ! k build -q --userns private "$w/b" >/dev/null 2>&1'
CHECK["build|--cert-dir"]='mkdir -p "$w/certs" && k build -q --cert-dir "$w/certs" "$w/b" >/dev/null'
CHECK["build|--timestamp"]='a=$(k build -q --timestamp 0 --no-cache "$w/b") && b=$(k build -q --timestamp 0 --no-cache "$w/b") && [ "$a" = "$b" ]'
CHECK["build|--cache-from"]='k build -q --tls-verify=false --cache-to "$REG/cache" "$w/b" >/dev/null && k build -q --tls-verify=false --no-cache --cache-from "$REG/cache" "$w/b" >/dev/null'
CHECK["build|--cache-to"]='k build -q --tls-verify=false --cache-to "$REG/cache2" "$w/b" >/dev/null && curl -sf "http://$REG/v2/cache2/tags/list" | grep -q tags'
CHECK["build|--ignorefile"]='printf "secret\n" >"$w/ign" && k build -q --ignorefile "$w/ign" "$w/b" >/dev/null'
CHECK["build|--tls-verify"]='k build -q --tls-verify=false "$w/b" >/dev/null'
CHECK["build|--authfile"]='echo "{}" >"$w/auth.json" && k build -q --authfile "$w/auth.json" "$w/b" >/dev/null'
CHECK["build|-q, --quiet"]='[ "$(k build -q "$w/b" | grep -c .)" = 1 ] && k build --quiet "$w/b" | grep -Eq "^(sha256:)?[0-9a-f]{64}$"'
CHECK["buildx build|—"]='k buildx build -q -t bx "$w/b" >/dev/null && k images --format "{{.Repository}}" | grep -q "/bx$"'
CHECK["inspect|-f, --format"]='[ "$(k inspect -f "{{.Os}}" busybox)" = linux ] && [ "$(k inspect --format "{{.Os}}" busybox)" = linux ]'
CHECK["inspect|-t, --type"]='k inspect -t container ex >/dev/null && k inspect --type image busybox >/dev/null && ! k inspect --type container busybox >/dev/null 2>&1'
CHECK["pull|--platform"]='k save --format oci-archive -o "$w/pl.tar" busybox >/dev/null && k pull --platform linux/$ARCH "oci-archive:$w/pl.tar" >/dev/null'
CHECK["push|—"]='k push --tls-verify=false busybox "docker://$REG/bb" >/dev/null 2>&1 && curl -sf "http://$REG/v2/bb/tags/list" | grep -q latest'
CHECK["tag|—"]='k tag busybox tagged2 && k images --format "{{.Repository}}" | grep -q tagged2'
CHECK["rmi|-f, --force"]='k tag busybox rmme && k rmi -f rmme >/dev/null && k tag busybox rmme && k rmi --force rmme >/dev/null && ! k images --format "{{.Repository}}" | grep -q rmme'
CHECK["history|—"]='k history busybox | head -1 | grep -q "CREATED"'
CHECK["save|-o, --output"]='k save -o "$w/s.tar" busybox && [ -s "$w/s.tar" ] && k save --output "$w/s2.tar" busybox && [ -s "$w/s2.tar" ]'
CHECK["load|-i, --input"]='k save -o "$w/l.tar" busybox && k load -i "$w/l.tar" >/dev/null && k load --input "$w/l.tar" >/dev/null'
CHECK["import|—"]='k import "$w/busybox.tar" imported2 >/dev/null && k images --format "{{.Repository}}" | grep -q imported2'
CHECK["login|-u, --username"]='as_mode $mode env HOME="$w/home" KILN_ROOT="$store" "$KILN_BIN" login --tls-verify=false -u u -p p "$REG" >/dev/null 2>&1 && as_mode $mode env HOME="$w/home" KILN_ROOT="$store" "$KILN_BIN" login --tls-verify=false --username u --password p "$REG" >/dev/null 2>&1'
CHECK["logout|—"]='as_mode $mode env HOME="$w/home" KILN_ROOT="$store" "$KILN_BIN" login --tls-verify=false -u u -p p "$REG" >/dev/null 2>&1 && as_mode $mode env HOME="$w/home" KILN_ROOT="$store" "$KILN_BIN" logout "$REG" >/dev/null 2>&1'
CHECK["manifest create|—"]='k manifest create mlist busybox >/dev/null && k manifest inspect mlist | grep -q manifests'
CHECK["manifest push|—"]='k manifest create mlist2 busybox >/dev/null && k manifest push --tls-verify=false mlist2 "docker://$REG/mlist" >/dev/null 2>&1 && curl -sf "http://$REG/v2/mlist/tags/list" | grep -q latest'
CHECK["volume create|—"]='k volume create cv1 >/dev/null && k volume ls -q | grep -qx cv1'
CHECK["volume ls|—"]='k volume create cv2 >/dev/null && k volume ls | grep -q cv2'
CHECK["volume rm|—"]='k volume create cv3 >/dev/null && k volume rm cv3 >/dev/null && ! k volume ls -q | grep -qx cv3'
CHECK["volume prune|-f, --force"]='k volume create cvp >/dev/null && k volume prune -f | grep -qx cvp && ! k volume ls -q | grep -qx cvp'
CHECK["container prune|-f, --force"]='k run --name cpr busybox true >/dev/null 2>&1; k container prune --force | grep -Eq "^[0-9a-f]{64}$" && ! k ps -a --format "{{.Names}}" | grep -qx cpr'
CHECK["info|-D, --debug"]='k info -D >/dev/null && k info --debug >/dev/null'
CHECK["secret create|—"]='printf v1 >"$w/sv1" && chmod 644 "$w/sv1" && k secret create cs1 "$w/sv1" | grep -Eq "^[0-9a-f]{25}$"'
CHECK["secret create|-l, --label"]='printf v | k secret create -l a=b --label c=d cs2 - >/dev/null && [ "$(k secret inspect --format "{{.Spec.Labels.a}}{{.Spec.Labels.c}}" cs2)" = bd ]'
CHECK["secret ls|—"]='printf v | k secret create cs3 - >/dev/null && k secret ls | grep -q " cs3 "'
CHECK["secret inspect|—"]='printf v | k secret create cs4 - >/dev/null && k secret inspect cs4 | grep -q "\"Name\": \"cs4\""'
CHECK["secret rm|-a, --all"]='printf v | k secret create cs5 - >/dev/null && k secret rm -a >/dev/null && [ -z "$(k secret ls -q)" ] && printf v | k secret create cs6 - >/dev/null && k secret rm --all >/dev/null'
CHECK["run|--restart"]='id=$(k create --restart on-failure:2 busybox true) && k inspect --format "{{.Config.restart.name}}:{{.Config.restart.max_retries}}" $id | grep -qx on-failure:2; r=$?; k rm $id >/dev/null; exit $r'
CHECK["run|--health-cmd"]='id=$(k create --health-cmd "test -d /" --health-interval 2s busybox true) && k inspect --format "{{index .Config.health.test 1}} {{.Config.health.interval}}" $id | grep -qx "test -d / 2000000000"; r=$?; k rm $id >/dev/null; exit $r'
CHECK["restart|—"]='id=$(k run -d --network none busybox sleep 30) && [ "$(k restart -t 1 $id)" = $id ] && [ "$(status $id)" = running ]; r=$?; cleanup_id; exit $r'
CHECK["events|—"]='k run --rm --name evx --network none busybox true >/dev/null && k events --stream=false --filter container=evx --format "{{.Status}}" | tr "\n" " " | grep -qx "create start died remove "'
CHECK["attach|—"]='id=$(k run -d -i --network none busybox cat) && [ "$(echo hi | k attach $id)" = hi ]; r=$?; cleanup_id; exit $r'
CHECK["top|—"]='id=$(k run -d --network none busybox sleep 31) && k top $id | grep -q "sleep 31"; r=$?; cleanup_id; exit $r'
CHECK["rename|—"]='id=$(k create --network none --name rnc1 busybox true) && k rename rnc1 rnc2 && [ "$(k container inspect --format "{{.Name}}" $id)" = rnc2 ]; r=$?; cleanup_id; exit $r'
CHECK["healthcheck|—"]='id=$(k run -d --network none --health-cmd "test -d /" busybox sleep 30) && k healthcheck run $id; r=$?; cleanup_id; exit $r'
CHECK["run|--secret"]='printf sv | k secret create rs1 - >/dev/null && [ "$(k run --rm --secret rs1 busybox cat /run/secrets/rs1)" = sv ] && [ "$(k run --rm --secret rs1,type=env,target=V busybox sh -c "echo \$V")" = sv ]'
CHECK["secret rm|-f, --force"]='printf v | k secret create cs8 - >/dev/null && k create --name csu --secret cs8 busybox true >/dev/null && ! k secret rm cs8 2>/dev/null && k secret rm -f cs8 >/dev/null && k rm csu >/dev/null'
CHECK["secret exists|—"]='printf v | k secret create cs7 - >/dev/null && k secret exists cs7 && ! k secret exists nosuch'
CHECK["info|—"]='k info >/dev/null'
CHECK["version|—"]='k version | grep -qi version'
CHECK["system prune|—"]='k system prune >/dev/null 2>&1 </dev/null || k system prune -f >/dev/null 2>&1'

# Every check has its row.
declare -A SEEN
for row in "${ROWS[@]}"; do
  IFS=$'\t' read -r cmd flag st <<<"$row"
  SEEN["$cmd|$flag"]=1
done
for key in "${!CHECK[@]}"; do
  [ -n "${SEEN[$key]:-}" ] || tap_not_ok "a check for '$key', which the table does not list"
done

# --help lists each spelling of every supported/differs flag (mode-independent).
declare -A HELP
help_of() {  # help_of COMMAND: the option spellings of `kiln COMMAND --help`, one a line
  if [ -z "${HELP[$1]:-}" ]; then
    # shellcheck disable=SC2086
    HELP[$1]=$("$KILN_BIN" $1 --help 2>/dev/null | awk '/^  -/{print $1}' | tr ',' '\n')
  fi
  printf '%s\n' "${HELP[$1]}"
}
for row in "${ROWS[@]}"; do
  IFS=$'\t' read -r cmd flag st <<<"$row"
  case "$st" in supported*|differs*) ;; *) continue ;; esac
  if [ -z "${CHECK["$cmd|$flag"]:-}" ]; then
    tap_not_ok "row '$cmd | $flag' ($st) has no check in tests/integration/cli_compat.sh"
    continue
  fi
  if [ "$flag" = "—" ]; then
    # shellcheck disable=SC2086
    if "$KILN_BIN" $cmd --help >/dev/null 2>&1; then tap_ok "kiln $cmd --help"; else tap_not_ok "kiln $cmd --help"; fi
    continue
  fi
  missing=""
  IFS=',' read -ra spellings <<<"$flag"
  for s in "${spellings[@]}"; do
    s=${s// /}
    help_of "$cmd" | grep -qx -- "$s" || missing="$missing $s"
  done
  if [ -z "$missing" ]; then tap_ok "kiln $cmd --help lists $flag"; else tap_not_ok "kiln $cmd --help lacks$missing"; fi
done

# "not yet" rows are refused.
for row in "${ROWS[@]}"; do
  IFS=$'\t' read -r cmd flag st <<<"$row"
  case "$st" in "not yet"*) ;; *) continue ;; esac
  if [ "$flag" = "—" ]; then
    # shellcheck disable=SC2086
    "$KILN_BIN" $cmd >/dev/null 2>"$KILN_TMP_ERR"; rc=$?
  else
    long=$(tr ',' '\n' <<<"$flag" | sed 's/ //g' | tail -1)
    case $cmd in
      exec) args=(ex true) ;; build) args=(.) ;; *) args=(busybox true) ;;
    esac
    # shellcheck disable=SC2086
    KILN_ROOT=/nonexistent/kiln-cli-compat "$KILN_BIN" $cmd "$long=x" "${args[@]}" >/dev/null 2>"$KILN_TMP_ERR"; rc=$?
  fi
  want=$cmd
  [ "$flag" = "—" ] || want=$long
  if [ "$rc" -ne 0 ] && grep -q -- "$want" "$KILN_TMP_ERR"; then
    tap_ok "not yet: kiln $cmd ${flag/—/} is refused (rc $rc)"
  else
    tap_not_ok "not yet: kiln $cmd ${flag/—/} should be refused (rc $rc): $(head -1 "$KILN_TMP_ERR")"
  fi
done

# The behaviour checks, as the test user and as root.
for mode in $(test_modes); do
  w=$(make_workdir "$mode")
  store="$w/store"
  k() { kiln_as "$mode" "$store" "$@"; }
  if ! import_busybox "$mode" "$store" "$w"; then tap_not_ok "$mode: import busybox"; continue; fi
  mkdir -p "$w/b" "$w/stages" "$w/bs" "$w/bssh" "$w/bctx" "$w/bcx" "$w/exp" "$w/home"
  printf 'FROM busybox\nARG A=0\nRUN echo $A >/a\n' >"$w/b/Containerfile"
  mkdir -p "$w/bcap"
  printf 'FROM busybox\nRUN grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; echo nofile=$(ulimit -n); grep compat.test /etc/hosts || true; df -k /dev/shm | tail -1\n' >"$w/bcap/Containerfile"
  printf 'FROM busybox AS one\nRUN echo one >/s\nFROM busybox\nRUN echo two >/s\n' >"$w/stages/Containerfile"
  printf 'FROM busybox\nRUN --mount=type=secret,id=s cat /run/secrets/s >/got\n' >"$w/bs/Containerfile"
  printf 'FROM busybox\nRUN --mount=type=ssh test -S "$SSH_AUTH_SOCK"\n' >"$w/bssh/Containerfile"
  printf 'FROM busybox\nCOPY --from=extra f /f\n' >"$w/bctx/Containerfile"
  printf 'FROM busybox\nEXPOSE 80\n' >"$w/exp/Containerfile"
  echo extra >"$w/bcx/f"
  printf sv >"$w/secret"
  python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$w/agent.sock"
  if [ "$mode" = user ] && [ "$(id -u)" -eq 0 ]; then chown -R "$KILN_TEST_USER" "$w"; fi
  k build -q -t exposes "$w/exp" >/dev/null 2>&1 || tap_not_ok "$mode: build the EXPOSE image"
  k run -d --name ex busybox sleep 600 >/dev/null 2>&1 || tap_not_ok "$mode: start the exec container"
  REG=
  regdir=$(mktemp -d /tmp/kiln-compat-reg.XXXXXX)
  if start_registry "$regdir"; then :; else REG=127.0.0.1:1; fi
  for row in "${ROWS[@]}"; do
    IFS=$'\t' read -r cmd flag st <<<"$row"
    case "$st" in supported*|differs*) ;; *) continue ;; esac
    snippet=${CHECK["$cmd|$flag"]:-}
    [ -n "$snippet" ] || continue
    if (eval "$snippet") >"$w/check.out" 2>&1; then
      tap_ok "$mode: kiln $cmd ${flag/—/} ($st)"
    else
      tap_not_ok "$mode: kiln $cmd ${flag/—/} ($st)"
      diag <"$w/check.out"
    fi
  done
  [ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
  REG_PID=
  rm -rf "$regdir"
  for c in $(k ps -a -q); do k rm -f "$c" >/dev/null 2>&1; done
  rm -rf "$w" 2>/dev/null
done
tap_done
