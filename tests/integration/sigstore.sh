#!/usr/bin/env bash
# Signed images (issue [2.12], docs/supply-chain.md), against a real
# docker-registry on loopback, as the test user and as root: kiln signs on
# push with a sigstore key; pulls are checked against policy.json before any
# blob is stored (sigstoreSigned keyPath, reject, insecureAcceptAnything); a
# signature copied onto another manifest or a missing one is refused naming
# the reference, the policy file and the scope; and signatures cross between
# kiln and skopeo in both directions.
set -u
. "$(dirname "$0")/lib.sh"

registry_workdir sigstore
export SOURCE_DATE_EPOCH=1700000000
seed=$work/seed
import_busybox root "$seed" "$work" >/dev/null || { tap_not_ok "import busybox"; tap_done; exit; }
mkdir -p "$work/other"
printf 'FROM busybox\nRUN echo other >/other\n' >"$work/other/Containerfile"
kiln_as root "$seed" build -q -t other "$work/other" >/dev/null 2>"$work/err" || { tap_not_ok "build"; diag <"$work/err"; tap_done; exit; }

echo 'correct horse' >"$work/pass"
if "$KILN_BIN" generate-sigstore-key --output-prefix "$work/key" --passphrase-file "$work/pass" >"$work/out" 2>&1 &&
   grep -q "BEGIN ENCRYPTED SIGSTORE PRIVATE KEY" "$work/key.private" &&
   [ "$(stat -c %a "$work/key.private")" = 600 ] && grep -q "BEGIN PUBLIC KEY" "$work/key.pub"; then
  tap_ok "generate-sigstore-key writes an encrypted private key (0600) and a public key"
else
  tap_not_ok "generate-sigstore-key"; diag <"$work/out"
fi
"$KILN_BIN" generate-sigstore-key --output-prefix "$work/stranger" >/dev/null 2>&1
chmod 644 "$work/key.private" "$work/pass"  # the test user signs with it too

# policy FILE SCOPE-JSON: a policy that rejects by default.
policy() {
  printf '{"default":[{"type":"reject"}],"transports":{"docker":{%s}}}\n' "$2" >"$work/$1"
  chmod 644 "$work/$1"
}
mkdir -p "$work/registries.d"
printf 'default-docker:\n  use-sigstore-attachments: true\n' >"$work/registries.d/default.yaml"

for mode in $(test_modes); do
  w=$(make_workdir "$mode"); s="$w/s"
  R=$REG/$mode
  policy "$mode-key.json" "\"$R\":[{\"type\":\"sigstoreSigned\",\"keyPath\":\"$work/key.pub\"}]"
  policy "$mode-stranger.json" "\"$R\":[{\"type\":\"sigstoreSigned\",\"keyPath\":\"$work/stranger.pub\"}]"
  policy "$mode-any.json" "\"$R\":[{\"type\":\"insecureAcceptAnything\"}]"
  policy "$mode-reject.json" "\"$R/secret\":[{\"type\":\"reject\"}],\"$R\":[{\"type\":\"insecureAcceptAnything\"}]"

  import_busybox "$mode" "$s" "$w" || { tap_not_ok "$mode: import"; continue; }
  kiln_as "$mode" "$seed" save -o "$w/other.tar" other >/dev/null 2>&1 || kiln_as root "$seed" save -o "$w/other.tar" other
  chmod 644 "$w/other.tar"; kiln_as "$mode" "$s" load -i "$w/other.tar" >/dev/null 2>&1

  if kiln_as "$mode" "$s" push -q --sign-by-sigstore-private-key "$work/key.private" \
       --sign-passphrase-file "$work/pass" busybox "$R/signed:1" >"$w/out" 2>&1 &&
     kiln_as "$mode" "$s" push -q busybox "$R/unsigned:1" >>"$w/out" 2>&1; then
    tap_ok "$mode: push --sign-by-sigstore-private-key signs and pushes"
  else
    tap_not_ok "$mode: signed push"; diag <"$w/out"; continue
  fi
  if kiln_as "$mode" "$s" push -q --sign-by-sigstore-private-key "$work/key.private" busybox "$R/nopass:1" >"$w/out" 2>&1; then
    tap_not_ok "$mode: a wrong (empty) passphrase is refused"
  elif grep -q "wrong passphrase" "$w/out" && ! curl -sf "http://$REG/v2/$mode/nopass/tags/list" >/dev/null 2>&1; then
    tap_ok "$mode: a wrong passphrase fails before anything is pushed"
  else
    tap_not_ok "$mode: wrong passphrase error"; diag <"$w/out"
  fi

  # Pull with the key's policy: the signed image, not the unsigned one.
  ok=1
  kiln_as "$mode" "$w/p1" pull -q --signature-policy "$work/$mode-key.json" "$R/signed:1" >"$w/out" 2>&1 || ok=0
  if [ $ok = 1 ]; then
    tap_ok "$mode: a pull whose policy requires the key's signature accepts the signed image"
  else
    tap_not_ok "$mode: signed pull"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$w/p2" pull --signature-policy "$work/$mode-key.json" "$R/unsigned:1" >"$w/out" 2>&1; then
    tap_not_ok "$mode: an unsigned image is refused"
  elif grep -q "$R/unsigned:1: refused by the signature policy $work/$mode-key.json (scope \"$R\"): no sigstore signature" "$w/out" &&
       [ -z "$(kiln_as "$mode" "$w/p2" images -q 2>/dev/null)" ]; then
    tap_ok "$mode: an unsigned image is refused naming the reference, policy file and scope, and nothing is stored"
  else
    tap_not_ok "$mode: unsigned refusal message"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$w/p3" pull --signature-policy "$work/$mode-stranger.json" "$R/signed:1" >"$w/out" 2>&1; then
    tap_not_ok "$mode: a signature by another key is refused"
  elif grep -q "no valid sigstore signature" "$w/out"; then
    tap_ok "$mode: a signature by a key the policy does not name is refused"
  else
    tap_not_ok "$mode: other key message"; diag <"$w/out"
  fi

  # A signature copied onto another manifest (what a registry attacker could do).
  kiln_as "$mode" "$s" push -q other "$R/swapped:1" >/dev/null 2>&1 || tap_not_ok "$mode: push other"
  sdig=$(curl -sI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REG/v2/$mode/signed/manifests/1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
  odig=$(curl -sI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REG/v2/$mode/swapped/manifests/1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/$mode/signed/manifests/sha256-${sdig#sha256:}.sig" >"$w/sig.json"
  # Its blobs must be in the target repository too: mount them.
  for d in $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["config"]["digest"]); [print(l["digest"]) for l in m["layers"]]' "$w/sig.json"); do
    curl -sf -X POST "http://$REG/v2/$mode/swapped/blobs/uploads/?mount=$d&from=$mode/signed" >/dev/null
  done
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$w/sig.json" \
    "http://$REG/v2/$mode/swapped/manifests/sha256-${odig#sha256:}.sig" >/dev/null
  if kiln_as "$mode" "$w/p4" pull --signature-policy "$work/$mode-key.json" "$R/swapped:1" >"$w/out" 2>&1; then
    tap_not_ok "$mode: a signature moved to another manifest is refused"; diag <"$w/out"
  elif grep -q "it signs manifest $sdig, not $odig" "$w/out"; then
    tap_ok "$mode: a signature moved onto another manifest is refused (it signs the other digest)"
  else
    tap_not_ok "$mode: swapped signature message"; diag <"$w/out"
  fi

  # reject and insecureAcceptAnything.
  if kiln_as "$mode" "$w/p5" pull -q --signature-policy "$work/$mode-any.json" "$R/unsigned:1" >"$w/out" 2>&1 &&
     ! kiln_as "$mode" "$w/p5" pull --signature-policy "$work/$mode-reject.json" "$R/secret/x:1" >"$w/out2" 2>&1 &&
     grep -q "(scope \"$R/secret\"): the requirement is \"reject\"" "$w/out2"; then
    tap_ok "$mode: insecureAcceptAnything still pulls; reject refuses in its scope"
  else
    tap_not_ok "$mode: accept/reject"; diag <"$w/out"; diag <"$w/out2"
  fi

  # skopeo verifies what kiln signed, and kiln verifies what skopeo signed.
  # Debian 12's skopeo is built with sigstore disabled: then both are skipped.
  if ! command -v skopeo >/dev/null; then
    tap_skip "$mode: skopeo is not installed"
  elif skopeo --insecure-policy --registries.d "$work/registries.d" copy -q --src-tls-verify=false --dest-tls-verify=false \
         --sign-by-sigstore-private-key "$work/key.private" --sign-passphrase-file "$work/pass" \
         "docker://$R/unsigned:1" "docker://$R/by-skopeo:1" >"$w/out" 2>&1; then
    if kiln_as "$mode" "$w/p6" pull -q --signature-policy "$work/$mode-key.json" "$R/by-skopeo:1" >>"$w/out" 2>&1; then
      tap_ok "$mode: kiln accepts an image signed by skopeo copy --sign-by-sigstore-private-key"
    else
      tap_not_ok "$mode: kiln verifies skopeo's signature"; diag <"$w/out"
    fi
    if skopeo --policy "$work/$mode-key.json" --registries.d "$work/registries.d" copy -q --src-tls-verify=false \
         "docker://$R/signed:1" "dir:$w/skopeo-out" >"$w/out" 2>&1 &&
       ! skopeo --policy "$work/$mode-stranger.json" --registries.d "$work/registries.d" copy -q --src-tls-verify=false \
         "docker://$R/signed:1" "dir:$w/skopeo-out2" >/dev/null 2>&1; then
      tap_ok "$mode: skopeo copy --policy (sigstoreSigned keyPath) accepts kiln's signature, and refuses it under another key"
    else
      tap_not_ok "$mode: skopeo verifies kiln's signature"; diag <"$w/out"
    fi
  elif grep -q "sigstore disabled" "$w/out"; then
    tap_skip "$mode: this skopeo is built with sigstore disabled (Debian-local change): no cross-check with skopeo"
  else
    tap_not_ok "$mode: skopeo signs"; diag <"$w/out"
  fi
  rm -rf "$w"
done
tap_done
