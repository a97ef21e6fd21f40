#!/usr/bin/env bash
# kiln secret create/ls/inspect/rm/exists through the real binary (podman
# 4.3's output shapes), and build --secret id=NAME reading a stored secret;
# the value is never printed, never in the image. As the unprivileged test
# user and as root (TAP).
set -u
export KILN_TEST_USER=${KILN_TEST_USER:-kiln-test}
. "$KILN_SOURCE_ROOT/tests/integration/lib.sh"

K=$KILN_BIN
VALUE=s3cr3t-$$-value
for mode in $(test_modes); do
  work=$(make_workdir "$mode")
  store=$work/store
  k() { kiln_as "$mode" "$store" "$@"; }
  printf '%s' "$VALUE" >"$work/pass.txt"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown "$KILN_TEST_USER" "$work/pass.txt"

  id=$(k secret create dbpass "$work/pass.txt" 2>"$work/err"); rc=$?
  if [ $rc = 0 ] && [[ $id =~ ^[0-9a-f]{25}$ ]]; then tap_ok "$mode: secret create prints a 25-digit ID as podman"
  else tap_not_ok "$mode: secret create (rc $rc, '$id')"; diag <"$work/err"; fi
  id2=$(printf 'from-stdin' | k secret create --label app=web apikey - 2>"$work/err")
  id3=$(as_mode "$mode" env PWVAR=from-env KILN_ROOT="$store" "$K" secret create --env envsec PWVAR 2>"$work/err")
  if [[ $id2 =~ ^[0-9a-f]{25}$ && $id3 =~ ^[0-9a-f]{25}$ ]]; then tap_ok "$mode: secret create from stdin (-) and from --env VAR"
  else tap_not_ok "$mode: secret create - / --env ('$id2' '$id3')"; diag <"$work/err"; fi

  out=$(k secret ls 2>&1)
  if [ "$(head -1 <<<"$out" | tr -s ' ')" = "ID NAME DRIVER CREATED UPDATED" ] && [ "$(grep -c ' file ' <<<"$out")" = 3 ] &&
     ! grep -q "$VALUE" <<<"$out"; then tap_ok "$mode: secret ls: podman's columns, one row each, no value"
  else tap_not_ok "$mode: secret ls"; diag <<<"$out"; fi
  out=$(k secret ls --format '{{.Name}} {{.Driver}}' 2>&1)
  if [ "$out" = "apikey file
dbpass file
envsec file" ]; then tap_ok "$mode: secret ls --format '{{.Name}} {{.Driver}}'"
  else tap_not_ok "$mode: secret ls --format"; diag <<<"$out"; fi
  out=$(k secret ls -q --filter name=db 2>&1)
  if [ "$out" = "$id" ]; then tap_ok "$mode: secret ls -q --filter name=db"; else tap_not_ok "$mode: ls -q filter ($out)"; fi

  out=$(k secret inspect apikey 2>&1)
  if jq -e --arg id "$id2" '.[0].ID == $id and .[0].Spec.Name == "apikey" and .[0].Spec.Driver.Name == "file"
        and .[0].Spec.Labels.app == "web" and (.[0].CreatedAt | test("^[0-9]{4}-"))' <<<"$out" >/dev/null &&
     ! grep -q from-stdin <<<"$out"; then tap_ok "$mode: secret inspect: podman's JSON (ID, Spec.Name, Driver, Labels), no value"
  else tap_not_ok "$mode: secret inspect"; diag <<<"$out"; fi
  out=$(k secret inspect --format '{{.Spec.Name}}' "${id:0:8}" 2>&1)
  if [ "$out" = dbpass ]; then tap_ok "$mode: secret inspect by ID prefix, --format"; else tap_not_ok "$mode: inspect prefix ($out)"; fi
  perm=$(find "$store/secrets" -name data -perm 600 | wc -l)
  leaked=$(grep -rl "$VALUE" "$store" --exclude=data 2>/dev/null | wc -l)
  if [ "$perm" = 3 ] && [ "$leaked" = 0 ]; then tap_ok "$mode: values stored 0600, nowhere else in the store"
  else tap_not_ok "$mode: stored values (0600: $perm, copies elsewhere: $leaked)"; fi

  k secret create dbpass "$work/pass.txt" >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 2 ] && grep -qx "kiln: error: secret name dbpass is in use (secret rm it, or --replace)" "$work/err"; then
    tap_ok "$mode: a second create of a name: exit 2, named"
  else tap_not_ok "$mode: duplicate name (rc $rc)"; diag <"$work/err"; fi
  printf 'new' >"$work/new.txt"; chmod 644 "$work/new.txt"
  id4=$(k secret create --replace dbpass "$work/new.txt" 2>"$work/err")
  if [ "$id4" = "$id" ]; then tap_ok "$mode: create --replace keeps the ID"; else tap_not_ok "$mode: --replace ($id4)"; diag <"$work/err"; fi
  k secret create 'bad/name' "$work/pass.txt" >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 2 ] && grep -q 'invalid secret name "bad/name"' "$work/err"; then tap_ok "$mode: bad name: exit 2"
  else tap_not_ok "$mode: bad name (rc $rc)"; diag <"$work/err"; fi
  k secret create nofile "$work/missing" >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 2 ] && grep -q "$work/missing" "$work/err"; then tap_ok "$mode: missing file: exit 2 naming it"
  else tap_not_ok "$mode: missing file (rc $rc)"; diag <"$work/err"; fi

  # build --secret id=NAME: the stored value, in the step, not in the image
  mkdir -p "$work/ctx"
  printf 'FROM busybox\nRUN --mount=type=secret,id=dbpass cat /run/secrets/dbpass >/seen-len && wc -c </run/secrets/dbpass >/len\n' \
    >"$work/ctx/Containerfile"
  [ "$mode" = user ] && [ "$(id -u)" -eq 0 ] && chown -R "$KILN_TEST_USER" "$work/ctx"
  import_busybox "$mode" "$store" "$work" || tap_not_ok "$mode: import busybox"
  (cd "$work" && k build -q -t withsecret --secret id=dbpass ctx >"$work/out" 2>"$work/err"); rc=$?
  seen=$(k run --rm --network none withsecret cat /seen-len 2>"$work/err.run")
  if [ $rc = 0 ] && [ "$seen" = new ]; then tap_ok "$mode: build --secret id=dbpass reads the stored secret"
  else tap_not_ok "$mode: build with a stored secret (rc $rc, saw '$seen')"; diag <"$work/err"; fi
  k save withsecret -o "$work/img.tar" >/dev/null 2>&1
  if [ -s "$work/img.tar" ] && ! tar -xOf "$work/img.tar" 2>/dev/null | grep -qa "$VALUE"; then
    tap_ok "$mode: the secret's value is in no layer or config of the saved image"
  else tap_not_ok "$mode: saved image"; fi
  (cd "$work" && k build -q --secret id=nosuchsecret ctx >/dev/null 2>"$work/err"); rc=$?
  if [ $rc = 2 ] && grep -q "no stored secret nosuchsecret" "$work/err"; then
    tap_ok "$mode: build --secret id=X with no file, variable or stored secret: exit 2, says where it looked"
  else tap_not_ok "$mode: missing build secret (rc $rc)"; diag <"$work/err"; fi

  k system prune --all -f >/dev/null 2>&1
  if [ "$(k secret ls -q | wc -l)" = 3 ]; then tap_ok "$mode: system prune --all keeps every secret"
  else tap_not_ok "$mode: prune removed secrets"; fi
  k secret exists apikey; a=$?; k secret exists nosuch; b=$?
  if [ $a = 0 ] && [ $b = 1 ]; then tap_ok "$mode: secret exists: 0 / 1"; else tap_not_ok "$mode: exists ($a $b)"; fi
  out=$(k secret rm apikey 2>&1)
  if [ "$out" = "$id2" ] && ! k secret exists apikey; then tap_ok "$mode: secret rm prints the ID and removes it"
  else tap_not_ok "$mode: secret rm ($out)"; fi
  k secret rm apikey >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 1 ] && grep -qx "kiln: error: no such secret: apikey" "$work/err"; then tap_ok "$mode: secret rm of a missing secret: exit 1 as podman"
  else tap_not_ok "$mode: rm missing (rc $rc)"; diag <"$work/err"; fi
  k secret inspect apikey >/dev/null 2>"$work/err"; rc=$?
  if [ $rc = 125 ]; then tap_ok "$mode: secret inspect of a missing secret: exit 125 as podman"; else tap_not_ok "$mode: inspect missing (rc $rc)"; fi
  out=$(k secret rm --all 2>&1)
  if [ "$(wc -l <<<"$out")" = 2 ] && [ -z "$(k secret ls -q)" ]; then tap_ok "$mode: secret rm --all"
  else tap_not_ok "$mode: rm --all ($out)"; fi
  rm -rf "$work" 2>/dev/null || true
done
tap_done
