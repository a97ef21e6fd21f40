#!/bin/bash
# kube play / play kube / kube down (docs/kube.md) beyond the round trip of
# kube.sh, through the real binary as the test user and as root (TAP):
# ConfigMaps (in the file and --configmap) and Secrets (into kiln's secret
# store) as env and as volumes, an emptyDir shared by the pod's
# containers, a PersistentVolumeClaim's named volume, restartPolicy,
# --network, --start=false, --build from ./<image>/Containerfile, a
# Deployment with replicas 3 (one pod and a warning), unknown kinds and
# fields warned by name, errors with exit 2.
. "$(dirname "$0")/../integration/lib.sh"
temp_workdir kube-play

for mode in $(test_modes); do
  begin_mode_here "$mode" || continue

  cat >"$w/app.yml" <<'YML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: hello-from-map
  app.conf: |
    listen=80
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
data:
  password: czNjcjN0
stringData:
  user: admin
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: app-claim
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Service
metadata:
  name: ignored
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {tier: demo}
spec:
  restartPolicy: OnFailure
  containers:
  - name: main
    image: busybox
    command: [sh, -c]
    args: ["echo shared-by-main > /scratch/f; sleep 300"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: app-config, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: app-secret, key: password}}
    - name: EXTRA
      valueFrom: {configMapKeyRef: {name: extra-config, key: extra}}
    - name: MISSING
      valueFrom: {configMapKeyRef: {name: app-config, key: nokey, optional: true}}
    volumeMounts:
    - {name: conf, mountPath: /etc/app}
    - {name: creds, mountPath: /run/creds}
    - {name: scratch, mountPath: /scratch}
    - {name: claim, mountPath: /claim}
    livenessProbe:
      exec: {command: [/bin/sh, -c, "test -f /scratch/f"]}
      periodSeconds: 3
  - name: side
    image: busybox
    command: [sleep, "300"]
    volumeMounts:
    - {name: scratch, mountPath: /shared}
  volumes:
  - {name: conf, configMap: {name: app-config}}
  - {name: creds, secret: {secretName: app-secret}}
  - {name: scratch, emptyDir: {}}
  - {name: claim, persistentVolumeClaim: {claimName: app-claim}}
YML
  cat >"$w/extra.yml" <<'YML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: extra-config
data:
  extra: from-configmap-flag
YML
  out=$(k kube play "$w/app.yml" 2>&1); rc=$?
  [ "$rc" != 0 ] && printf '%s' "$out" | grep -q 'env EXTRA: configMapKeyRef: no ConfigMap extra-config' && ! k pod exists app &&
    tap_ok "$mode: a missing ConfigMap is an error naming the variable and the map (nothing made)" ||
    tap_not_ok "$mode: missing ConfigMap: $rc $out"
  out=$(k kube play --configmap "$w/extra.yml" "$w/app.yml" 2>&1); rc=$?
  if [ "$rc" = 0 ] && printf '%s\n' "$out" | grep -qx 'Pod:' && printf '%s\n' "$out" | grep -qx 'Containers:'; then
    tap_ok "$mode: kube play --configmap of a Pod with ConfigMap, Secret, PVC"
  else
    tap_not_ok "$mode: kube play: $rc $out"
  fi
  printf '%s' "$out" | grep -q 'kind Service is not supported by kiln' && tap_ok "$mode: an unknown kind warns and names it" ||
    tap_not_ok "$mode: unknown kind: $out"
  env=$(k exec app-main sh -c 'echo "$GREETING|$PASSWORD|$EXTRA|${MISSING-unset}"' 2>&1)
  [ "$env" = "hello-from-map|s3cr3t|from-configmap-flag|unset" ] &&
    tap_ok "$mode: env valueFrom configMapKeyRef, secretKeyRef, --configmap; optional missing key left out" ||
    tap_not_ok "$mode: env: $env"
  files=$(k exec app-main sh -c 'cat /etc/app/greeting; echo; cat /etc/app/app.conf; cat /run/creds/user; echo; cat /run/creds/password' 2>&1)
  [ "$files" = "$(printf 'hello-from-map\nlisten=80\nadmin\ns3cr3t')" ] &&
    tap_ok "$mode: configMap and secret volumes hold the keys as files" || tap_not_ok "$mode: volumes: $files"
  out=$(k exec app-main sh -c 'echo x > /etc/app/new' 2>&1); rc=$?
  [ "$rc" != 0 ] && tap_ok "$mode: configMap volumes are read-only" || tap_not_ok "$mode: configMap writable"
  got=$(wait_for 5 k exec app-side cat /shared/f >/dev/null 2>&1; k exec app-side cat /shared/f 2>&1)
  [ "$got" = shared-by-main ] && tap_ok "$mode: an emptyDir is shared by the pod's containers" || tap_not_ok "$mode: emptyDir: $got"
  k exec app-main sh -c 'echo claim-data > /claim/d' >/dev/null 2>&1
  out=$(k volume inspect -f '{{.Name}}' app-claim 2>&1)
  [ "$out" = app-claim ] && tap_ok "$mode: a PersistentVolumeClaim is a named volume" || tap_not_ok "$mode: PVC volume: $out"
  out=$(k secret inspect -f '{{.Spec.Name}}' app-secret 2>&1)
  [ "$out" = app-secret ] && tap_ok "$mode: a Secret goes into kiln's secret store" || tap_not_ok "$mode: secret store: $out"
  out=$(k inspect --type container -f '{{.HostConfig.RestartPolicy.Name}} {{.Config.health.test}}' app-main 2>&1)
  [ "$out" = "on-failure [CMD-SHELL test -f /scratch/f]" ] && tap_ok "$mode: restartPolicy OnFailure and the livenessProbe" ||
    tap_not_ok "$mode: restart/probe: $out"
  out=$(k pod inspect -f '{{.Labels.tier}} {{.NumContainers}}' app 2>&1)
  [ "$out" = "demo 3" ] && tap_ok "$mode: the pod has the YAML's labels, its 2 containers and the infra" || tap_not_ok "$mode: pod: $out"
  out=$(k kube down "$w/app.yml" 2>&1); rc=$?
  data=$(k run --rm --network none -v app-claim:/c busybox cat /c/d 2>&1)
  [ "$rc" = 0 ] && ! k pod exists app && [ "$data" = claim-data ] &&
    tap_ok "$mode: kube down removes the pod and keeps the claim's volume with its data" || tap_not_ok "$mode: down: $rc $out / $data"
  # A Secret made by an earlier play is found in the secret store.
  python3 -c 'import sys; d=open(sys.argv[1]).read().split("---\n"); print("---\n".join(x for x in d if "kind: Secret" not in x), end="")' \
    "$w/app.yml" >"$w/nosecret.yml"
  out=$(k kube play --configmap "$w/extra.yml" --start=false "$w/nosecret.yml" 2>&1); rc=$?
  st=$(k ps -a --filter pod=app --format '{{.Names}} {{.State}}' 2>&1 | grep -v infra | sort | tr '\n' ' ')
  [ "$rc" = 0 ] && [ "$st" = "app-main created app-side created " ] &&
    tap_ok "$mode: --start=false creates without starting; a secretKeyRef found in kiln's secret store" ||
    tap_not_ok "$mode: --start=false: $rc $out / $st"
  k play kube --down "$w/app.yml" >/dev/null 2>&1
  k pod exists app && tap_not_ok "$mode: play kube --down left the pod" || tap_ok "$mode: play kube --down removes the pod"

  # A Deployment with replicas 3: one pod and a warning; an unknown field named.
  cat >"$w/dep.yml" <<'YML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dep
spec:
  replicas: 3
  selector: {matchLabels: {app: dep}}
  template:
    metadata: {labels: {app: dep}}
    spec:
      containers:
      - name: c
        image: busybox
        command: [sleep, "300"]
        frobnicate: yes
YML
  out=$(k kube play "$w/dep.yml" 2>&1); rc=$?
  n=$(k pod ps --format '{{.Name}}' 2>/dev/null | grep -c '^dep-pod$')
  [ "$rc" = 0 ] && [ "$n" = 1 ] && printf '%s' "$out" | grep -q 'spec.replicas: 3 replicas asked, kiln runs one pod' &&
    tap_ok "$mode: a Deployment with replicas 3 gives one pod (dep-pod) and a warning" || tap_not_ok "$mode: replicas: $rc $n $out"
  printf '%s' "$out" | grep -q 'dep.yml:15:9: Deployment/dep.spec.template.spec.containers\[0\].frobnicate: unknown field' &&
    tap_ok "$mode: an unknown field warns and names it (file:line:column and path)" || tap_not_ok "$mode: unknown field: $out"
  st=$(k inspect --type container -f '{{.State.Status}}' dep-pod-c 2>&1)
  [ "$st" = running ] && tap_ok "$mode: the Deployment's container runs" || tap_not_ok "$mode: dep-pod-c: $st"
  out=$(k kube down "$w/dep.yml" 2>&1)
  k pod exists dep-pod && tap_not_ok "$mode: kube down of a Deployment: $out" || tap_ok "$mode: kube down removes the Deployment's pod"

  # --network: the pod's container network; --build from ./<image>/Containerfile.
  net=kp$$-$mode
  k network create "$net" >/dev/null 2>&1
  mkdir -p "$w/ctx/kpimg"
  printf 'FROM busybox\nRUN echo built-by-play > /built\n' >"$w/ctx/kpimg/Containerfile"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$w/ctx"
  cat >"$w/ctx/b.yml" <<'YML'
apiVersion: v1
kind: Pod
metadata:
  name: built
spec:
  containers:
  - name: b
    image: localhost/kpimg:latest
    command: [sleep, "300"]
YML
  out=$(cd "$w/ctx" && k kube play --network "$net" b.yml 2>&1); rc=$?
  got=$(k exec built-b cat /built 2>&1)
  infra=$(k pod inspect -f '{{.InfraContainerID}}' built 2>/dev/null)
  nets="$(k pod inspect -f '{{.InfraConfig.Networks}}' built 2>&1) $(k inspect --type container -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$infra" 2>&1)"
  [ "$rc" = 0 ] && [ "$got" = built-by-play ] && tap_ok "$mode: kube play builds a missing image from ./kpimg/Containerfile" ||
    tap_not_ok "$mode: --build: $rc $out / $got"
  [ "$nets" = "[$net] $net" ] && tap_ok "$mode: kube play --network puts the pod on that network" || tap_not_ok "$mode: --network: $nets"
  out=$(cd "$w/ctx" && k kube play --replace --build=false b.yml 2>&1); rc=$?
  [ "$rc" = 0 ] && ! printf '%s' "$out" | grep -q Building && tap_ok "$mode: --build=false uses the stored image" ||
    tap_not_ok "$mode: --build=false: $rc $out"
  k pod rm -f built >/dev/null 2>&1
  k network rm "$net" >/dev/null 2>&1

  # Errors: exit 2 with file:line:column.
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n' >"$w/bad.yml"
  out=$(k kube play "$w/bad.yml" 2>&1); rc=$?
  [ "$rc" = 2 ] && printf '%s' "$out" | grep -q 'bad.yml:7:5.*image is required' &&
    tap_ok "$mode: an invalid YAML is exit 2 naming file:line:column" || tap_not_ok "$mode: bad YAML: $rc $out"
  out=$(k kube play "$w/nosuch.yml" 2>&1); rc=$?
  [ "$rc" != 0 ] && printf '%s' "$out" | grep -q 'nosuch.yml' && tap_ok "$mode: a missing file is an error naming it" ||
    tap_not_ok "$mode: missing file: $rc $out"
  out=$(k kube play --start=maybe "$w/dep.yml" 2>&1); rc=$?
  [ "$rc" = 2 ] && tap_ok "$mode: --start=maybe is a usage error" || tap_not_ok "$mode: --start=maybe: $rc $out"
  k prune --check >/dev/null 2>&1 && tap_ok "$mode: prune --check is clean after kube play/down" ||
    tap_not_ok "$mode: prune --check: $(k prune --check 2>&1)"
done
tap_done
