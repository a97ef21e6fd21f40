#!/usr/bin/env bash
# Records the shape of podman's --format output (JSON keys, table headers,
# the template fields it accepts) into testdata/format/podman-4.3/, for
# tests/format/cli_format.sh to compare kiln's with. Run once by hand where
# podman runs (docs: /work/shared/docs/PODMAN-HERE.md); podman itself is too
# slow and needs too much set-up to run in every test run.
#   tests/format/record_podman.sh BUSYBOX.tar
set -eu
tar=${1:?usage: record_podman.sh BUSYBOX.tar}
out=$(cd "$(dirname "$0")/../.." && pwd)/testdata/format/podman-4.3
w=$(mktemp -d)
trap 'podman --root "$w/root" --runroot "$w/run" rm -af >/dev/null 2>&1; rm -rf "$w"' EXIT
printf '[containers]\nlog_driver = "k8s-file"\ndefault_ulimits = ["nofile=20000:20000"]\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n' >"$w/containers.conf"
export CONTAINERS_CONF=$w/containers.conf
P="podman --root $w/root --runroot $w/run --storage-driver vfs"
$P import --change 'LABEL a=b' "$tar" localhost/busybox:latest >/dev/null
$P create --name c1 busybox sleep 1000 >/dev/null
$P volume create v1 >/dev/null
keys() { python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin)[0].keys())))'; }
$P ps -a --format json | keys >"$out/ps-json-keys"
$P images --format json | keys >"$out/images-json-keys"
$P volume ls --format json | keys >"$out/volume-ls-json-keys"
$P history --format json busybox | keys >"$out/history-json-keys"
$P ps -a | head -1 >"$out/ps-header"
$P ps -a -s | head -1 >"$out/ps-size-header"
$P images | head -1 >"$out/images-header"
$P images --digests | head -1 >"$out/images-digests-header"
$P volume ls | head -1 >"$out/volume-ls-header"
$P history busybox | head -1 >"$out/history-header"
# the template fields podman accepts (one per line: FIELD<TAB>header)
fields() {  # fields CMD FIELD...
  local cmd=$1; shift
  for f in "$@"; do
    if h=$($P $cmd --format "table {{.$f}}" 2>/dev/null | head -1); then printf '%s\t%s\n' "$f" "$h"; fi
  done
}
fields "ps -a" ID Image ImageID Command CreatedAt CreatedHuman RunningFor Status State Ports Names Labels Mounts \
  Networks Pod PodName Pid ExitCode Exited ExitedAt StartedAt AutoRemove Namespaces >"$out/ps-fields"
fields images ID Id Repository Tag Digest Created CreatedSince Size VirtualSize SharedSize Labels Names Containers \
  ReadOnly History Dangling RepoTags RepoDigests ParentId >"$out/images-fields"
fields "volume ls" Name Driver Mountpoint Scope Labels Options >"$out/volume-ls-fields"
fields "history busybox" ID Created CreatedBy Size Comment Tags >"$out/history-fields"
$P version --format json | python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin)["Client"].keys())))' \
  >"$out/version-client-keys"
# errors: message shape and exit status
{ $P ps -a --format '{{.Foo}}' 2>&1 && echo "exit 0" || echo "exit $?"; } | sed 's/^Error: //' >"$out/ps-bad-field"
{ $P ps -a --format '{{.ID' 2>&1 && echo "exit 0" || echo "exit $?"; } | sed 's/^Error: //' >"$out/ps-unclosed"
{ $P inspect --format '{{.State.Foo}}' c1 2>&1 && echo "exit 0" || echo "exit $?"; } | sed 's/^Error: //' >"$out/inspect-bad-field"
{ $P ps --filter bogus=1 2>&1 && echo "exit 0" || echo "exit $?"; } | sed 's/^Error: //' >"$out/ps-bad-filter"
{ $P images --filter bogus=1 2>&1 && echo "exit 0" || echo "exit $?"; } | sed 's/^Error: //' >"$out/images-bad-filter"
echo "recorded in $out"
