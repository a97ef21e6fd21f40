#!/usr/bin/env bash
# --format, --filter and the list options of ps, images, inspect, container
# inspect, volume ls/inspect, history, info and version, through the real
# binary as the unprivileged test user and as root (TAP). Output shapes
# (table headers, JSON field names, the template fields podman accepts, error
# messages and exit codes) are compared with podman 4.3's, recorded once in
# testdata/format/podman-4.3 by tests/format/record_podman.sh (running podman
# here each time would cost ~10 s of set-up and needs its configuration).
set -u
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"
REC=$KILN_SOURCE_ROOT/testdata/format/podman-4.3

# columns HEADER-LINE: one column name a line (podman separates by 2+ blanks)
columns() { sed -E 's/ {2,}/\n/g' | sed '/^$/d'; }
same() {  # same DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then tap_ok "$1"; else tap_not_ok "$1"; diff <(echo "$2") <(echo "$3") | diag; fi
}
json_keys() { python3 -c 'import json,sys; a=json.load(sys.stdin); print("\n".join(sorted(a[0].keys())))'; }

for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store=$work/store
  k() { kiln_as "$mode" "$store" "$@"; }
  if ! import_busybox "$mode" "$store" "$work"; then
    tap_not_ok "$mode: import busybox"; continue
  fi
  sleep 1  # before=/since= compare creation times, in seconds
  mkdir -p "$work/ctx"
  printf 'FROM busybox\nLABEL app=shop\nRUN echo built >/built\n' >"$work/ctx/Containerfile"
  chmod -R a+rX "$work/ctx"
  if ! k build -q -t labelled "$work/ctx" >/dev/null 2>"$work/build.err"; then
    tap_not_ok "$mode: build a labelled image"; diag <"$work/build.err"; continue
  fi
  k volume create v1 >/dev/null
  k run -d --name web labelled sleep 1000 >/dev/null 2>"$work/run.err" || diag <"$work/run.err"
  k run --name done busybox sh -c 'exit 3' >/dev/null 2>&1
  sleep 1  # -l and -n: the latest created, in seconds
  k run --name long-command-container busybox sh -c 'echo a command much longer than twenty characters' \
    >/dev/null 2>&1

  # ---- shapes against podman 4.3
  same "$mode: ps header as podman's" "$(columns <"$REC/ps-header")" "$(k ps -a | head -1 | columns)"
  same "$mode: ps -s header as podman's" "$(columns <"$REC/ps-size-header")" "$(k ps -a -s | head -1 | columns)"
  same "$mode: ps --format json field names as podman's" "$(cat "$REC/ps-json-keys")" \
    "$(k ps -a --format json | json_keys)"
  same "$mode: images header as podman's" "$(columns <"$REC/images-header")" "$(k images | head -1 | columns)"
  same "$mode: images --digests header as podman's" "$(columns <"$REC/images-digests-header")" \
    "$(k images --digests | head -1 | columns)"
  same "$mode: images --format json field names as podman's" "$(cat "$REC/images-json-keys")" \
    "$(k images --format json | json_keys | grep -v -x -e IsManifestList -e Dangling)"
  same "$mode: volume ls header as podman's" "$(columns <"$REC/volume-ls-header")" \
    "$(k volume ls | head -1 | columns)"
  same "$mode: volume ls --format json field names as podman's (and UsedBy)" \
    "$(grep -v -x -e NeedsChown -e NeedsCopyUp "$REC/volume-ls-json-keys")" \
    "$(k volume ls --format json | json_keys | grep -v -x UsedBy)"
  same "$mode: history header as podman's" "$(columns <"$REC/history-header")" \
    "$(k history busybox | head -1 | columns)"
  for cmd in ps images volume-ls history; do
    argv=(); case $cmd in ps) argv=(ps -a) ;; images) argv=(images) ;; volume-ls) argv=(volume ls) ;;
      history) argv=(history busybox) ;; esac
    bad=
    while IFS=$'\t' read -r field header; do
      [ "$header" = "<no value>" ] && header=$(echo "$field" | sed -E 's/([a-z])([A-Z])/\1 \2/g' | tr a-z A-Z)
      got=$(k "${argv[@]}" --format "table {{.$field}}" 2>&1 | head -1)
      [ "$got" = "$header" ] || bad+=" $field($got!=$header)"
    done <"$REC/$cmd-fields"
    if [ -z "$bad" ]; then tap_ok "$mode: $cmd: every template field podman has, with its header"
    else tap_not_ok "$mode: $cmd: template fields:$bad"; fi
  done
  kv=$(k version --format json | python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin)["Client"])))')
  extra=$(comm -23 <(echo "$kv") "$REC/version-client-keys")
  same "$mode: version --format json: Client fields are podman's" "" "$extra"

  # ---- templates a user types
  same "$mode: ps --format '{{.Names}} {{.Status}}'" "web Up" "$(k ps --format '{{.Names}} {{.Status}}' | cut -c1-6)"
  same "$mode: ps --format with {{if eq .State}}" "web" \
    "$(k ps -a --format '{{if eq .State "running"}}{{.Names}}{{end}}' | sed '/^$/d')"
  same "$mode: ps --format '{{join .Names \",\"}} {{.Command}}'" "web sleep 1000" \
    "$(k ps --format '{{join .Names ","}} {{.Command}}')"
  same "$mode: images --format '{{.Repository}}:{{.Tag}}'" "localhost/busybox:latest
localhost/labelled:latest" "$(k images --format '{{.Repository}}:{{.Tag}}' | sort)"
  same "$mode: images table with spaces between actions" "REPOSITORY TAG
localhost/busybox latest" "$(k images --format 'table {{.Repository}} {{.Tag}}' --filter reference=busybox | tr -s ' ')"
  same "$mode: inspect --format '{{.State.Status}}' CTR" "running" "$(k inspect --format '{{.State.Status}}' web)"
  same "$mode: container inspect --format" "exited 3" \
    "$(k container inspect --format '{{.State.Status}} {{.State.ExitCode}}' done)"
  same "$mode: inspect --format on an image: {{.Config.Labels.app}} {{json .Config.Labels}}" 'shop {"app":"shop"}' \
    "$(k inspect --format '{{.Config.Labels.app}} {{json .Config.Labels}}' labelled)"
  same "$mode: inspect --format over two objects, one line each" "running
exited" "$(k inspect --format '{{.State.Status}}' web done)"
  same "$mode: volume inspect --format" "v1 local" "$(k volume inspect --format '{{.Name}} {{.Driver}}' v1)"
  same "$mode: volume ls --format" "v1" "$(k volume ls --format '{{.Name}}')"
  same "$mode: history --format" "<missing>" "$(k history --format '{{.ID}}' labelled | tail -1)"
  arch=$(k info --format '{{.Host.Arch}}/{{.Store.GraphDriverName}}')
  case $arch in ?*/?*) tap_ok "$mode: info --format '{{.Host.Arch}}/{{.Store.GraphDriverName}}' ($arch)" ;;
    *) tap_not_ok "$mode: info --format: '$arch'" ;; esac
  same "$mode: version --format '{{.Client.Version}}'" "$("$KILN_BIN" version | awk '{print $3}')" \
    "$(k version --format '{{.Client.Version}}')"

  # ---- errors: position and field named, exit 125 as podman
  err() {  # err DESCRIPTION PODMAN-RECORD EXPECTED-SUBSTRING ARGS...
    local desc=$1 rec=$2 want=$3; shift 3
    local out rc
    out=$(k "$@" 2>&1 >/dev/null); rc=$?
    local prc; prc=$(tail -1 "$REC/$rec" | awk '{print $2}')
    if [ "$rc" = "$prc" ] && [[ $out == *"$want"* ]]; then tap_ok "$desc (exit $rc, as podman)"
    else tap_not_ok "$desc: exit $rc (podman $prc): $out"; fi
  }
  err "$mode: ps --format '{{.Foo}}' names the field and position" ps-bad-field \
    'template: ps:1:2: executing "ps" at <.Foo>: can'"'"'t evaluate field Foo in type' ps -a --format '{{.Foo}}'
  err "$mode: ps --format '{{.ID' is a syntax error" ps-unclosed 'template: ps:1:0: unclosed action' \
    ps -a --format '{{.ID'
  err "$mode: inspect --format '{{.State.Foo}}'" inspect-bad-field \
    'executing "inspect" at <.State.Foo>: can'"'"'t evaluate field Foo in type State' inspect --format '{{.State.Foo}}' web
  err "$mode: ps --filter bogus=1" ps-bad-filter 'bogus is an invalid filter' ps --filter bogus=1
  err "$mode: images --filter bogus=1" images-bad-filter 'unsupported image filter "bogus"' images --filter bogus=1

  # ---- ps filters and list options
  web=$(k ps -q --no-trunc); done_id=$(k ps -a -q --filter name=^done$)
  same "$mode: ps --no-trunc -q prints the full ID" 64 "${#web}"
  same "$mode: ps --filter status=exited" "done long-command-container" \
    "$(k ps -a --filter status=exited --format '{{.Names}}' | sort | xargs)"
  same "$mode: ps --filter exited=3" "done" "$(k ps -a --filter exited=3 --format '{{.Names}}')"
  same "$mode: ps --filter name=REGEX" "web" "$(k ps -a --filter name=^we --format '{{.Names}}')"
  same "$mode: ps --filter id=PREFIX" "done" "$(k ps -a --filter id="${done_id:0:5}" --format '{{.Names}}')"
  same "$mode: ps --filter label=app=shop" "web" "$(k ps -a --filter label=app=shop --format '{{.Names}}')"
  same "$mode: ps --filter ancestor=busybox" "done long-command-container" \
    "$(k ps -a --filter ancestor=busybox --format '{{.Names}}' | sort | xargs)"
  same "$mode: ps --filter name= --filter name= (OR) and status= (AND)" "done" \
    "$(k ps -a --filter name=web --filter name=done --filter status=exited --format '{{.Names}}')"
  same "$mode: ps --filter pod=X and health=X match nothing, as podman for containers without them" "" \
    "$(k ps -a -q --filter pod=x; k ps -a -q --filter health=healthy)"
  same "$mode: ps -l: the latest container, any state" "long-command-container" "$(k ps -l --format '{{.Names}}')"
  same "$mode: ps -n 2" "2" "$(k ps -n 2 -q | wc -l)"
  same "$mode: ps --sort names" "done long-command-container web" "$(k ps -a --sort names --format '{{.Names}}' | xargs)"
  same "$mode: ps --noheading" "3" "$(k ps -a --noheading | wc -l)"
  # columns do not drift: NAMES starts at one offset on every line
  offsets=$(k ps -a | awk 'NR==1{o=index($0,"NAMES"); next} {print (substr($0,o,1)!=" " && substr($0,o-1,1)==" ") ? "ok" : "drift"}' | sort -u)
  same "$mode: ps columns aligned with a long COMMAND (truncated as podman)" "ok" "$offsets"
  same "$mode: ps truncates COMMAND at 17 + ..., as podman" "sh -c echo a comm..." \
    "$(k ps -a --filter name=long --format '{{.Command}}')"

  # ---- images filters and options
  same "$mode: images --filter label=app=shop" "localhost/labelled" \
    "$(k images --filter label=app=shop --format '{{.Repository}}')"
  same "$mode: images --filter reference=busy*" "localhost/busybox" \
    "$(k images --filter 'reference=busy*' --format '{{.Repository}}')"
  same "$mode: images --filter dangling=true" "" "$(k images -q --filter dangling=true)"
  same "$mode: images --filter since=busybox" "localhost/labelled" \
    "$(k images --filter since=busybox --format '{{.Repository}}')"
  same "$mode: images --filter before=labelled" "localhost/busybox" \
    "$(k images --filter before=labelled --format '{{.Repository}}')"
  same "$mode: images --sort repository --noheading" "localhost/busybox localhost/labelled" \
    "$(k images --sort repository --noheading | awk '{print $1}' | xargs)"

  k rm -f web done long-command-container >/dev/null 2>&1
  rm -rf "$work" 2>/dev/null
done
tap_done
