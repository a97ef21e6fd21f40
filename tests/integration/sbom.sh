#!/usr/bin/env bash
# SBOM and provenance attestations (issue [2.12] item 4, docs/supply-chain.md),
# offline, as the test user and as root: `kiln build --sbom` on an image with
# a Debian dpkg database (this host's, copied in by a Containerfile) lists
# exactly the installed packages `dpkg-query -W --admindir=DIR` lists (names
# and versions), plus the Python and npm packages put in beside it, and none
# that a later layer deleted; on busybox it lists nothing and says so; both
# SBOMs validate against the SPDX 2.3 JSON schema (testdata/spdx); the
# provenance names the Containerfile, context and base image digests with
# credentials redacted; the index with its attestation manifest is pushed to
# a docker-registry on loopback, read by skopeo, pulled back and run; and a
# build without the flags is the single manifest it always was.
set -u
. "$(dirname "$0")/lib.sh"

if ! python3 -c 'import jsonschema' 2>/dev/null; then
  tap_skip "python3-jsonschema is not installed"; tap_done; exit
fi
if [ ! -f /var/lib/dpkg/status ] || ! command -v dpkg-query >/dev/null; then
  tap_skip "no dpkg database on this host"; tap_done; exit
fi
registry_workdir sbom
export SOURCE_DATE_EPOCH=1700000000
schema="$KILN_SOURCE_ROOT/testdata/spdx/spdx-schema-2.3.json"

# The context: the host's dpkg database plus a removed package ("rc": only
# its conffiles are left, so no SBOM lists it), an os-release, a Python
# dist-info and node_modules, one of which a later RUN deletes.
ctx=$work/deb
mkdir -p "$ctx/dpkg/info" "$ctx/dpkg/updates" "$ctx/site/six-1.16.0.dist-info" \
  "$ctx/node_modules/left-pad" "$ctx/node_modules/@scope/kept" "$ctx/node_modules/gone"
cp /var/lib/dpkg/status "$ctx/dpkg/status"
printf '\nPackage: kiln-removed-test\nStatus: deinstall ok config-files\nPriority: optional\nSection: misc\nMaintainer: nobody <nobody@example.org>\nArchitecture: all\nVersion: 9.9-1\nDescription: removed\n' >>"$ctx/dpkg/status"
touch "$ctx/dpkg/available"
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' >"$ctx/os-release"
printf 'Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\nbody\n' >"$ctx/site/six-1.16.0.dist-info/METADATA"
echo '{"name":"left-pad","version":"1.3.0","license":"WTFPL"}' >"$ctx/node_modules/left-pad/package.json"
echo '{"name":"@scope/kept","version":"2.0.0"}' >"$ctx/node_modules/@scope/kept/package.json"
echo '{"name":"gone","version":"0.0.1"}' >"$ctx/node_modules/gone/package.json"
cat >"$ctx/Containerfile" <<'EOF'
FROM busybox
ARG URL
COPY dpkg/ /var/lib/dpkg/
COPY os-release /etc/os-release
COPY site/ /usr/lib/python3/dist-packages/
COPY node_modules/ /app/node_modules/
RUN rm -rf /app/node_modules/gone
EOF
mkdir -p "$work/bb"
printf 'FROM busybox\nRUN echo hi >/hi\n' >"$work/bb/Containerfile"
chmod -R a+rX "$work"

# What dpkg says is installed in that database: every package but the ones
# whose files are gone (config-files, not-installed).
dpkg-query -W --admindir="$ctx/dpkg" -f '${db:Status-Abbrev} ${Package} ${Version}\n' 2>/dev/null |
  awk '$1 !~ /^(rc|pn|un)$/ { print $2 "=" $3 }' | sort >"$work/dpkg.list"
dpkg_n=$(wc -l <"$work/dpkg.list")
dpkg-query -W --admindir="$ctx/dpkg" 2>/dev/null | grep -q '^kiln-removed-test' || tap_not_ok "dpkg-query lists the rc package"

# sbom_list FILE TYPE: "name=version" of the SPDX document's TYPE packages, sorted
sbom_list() {
  python3 - "$1" "$2" <<'PY' | sort
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["packages"]:
    for r in p.get("externalRefs", []):
        if r["referenceType"] == "purl" and r["referenceLocator"].startswith("pkg:" + sys.argv[2] + "/"):
            print(p["name"] + "=" + p["versionInfo"])
PY
}
# validate FILE: against the SPDX 2.3 schema
validate() {
  python3 - "$schema" "$1" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
errors = list(jsonschema.Draft7Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
for e in errors[:5]:
    print("%s: %s" % (list(e.path), e.message))
sys.exit(1 if errors else 0)
PY
}

# The schema check can fail: a document without spdxVersion and with a bad
# relationship type is refused.
printf '{"SPDXID":"SPDXRef-DOCUMENT","name":"x","dataLicense":"CC0-1.0","creationInfo":{"created":"x","creators":["Tool: x"]},"relationships":[{"spdxElementId":"a","relatedSpdxElement":"b","relationshipType":"LIKES"}]}\n' >"$work/bad.json"
if validate "$work/bad.json" >"$work/out" 2>&1; then
  tap_not_ok "the SPDX 2.3 schema refuses a broken document"
else
  tap_ok "the SPDX 2.3 schema refuses a broken document ($(head -1 "$work/out" | cut -c1-60)...)"
fi

for mode in $(test_modes); do
  w=$(make_workdir "$mode"); store="$w/s"
  k() { kiln_as "$mode" "$store" "$@"; }
  import_busybox "$mode" "$store" "$w" || { tap_not_ok "$mode: import busybox"; continue; }
  R=$REG/$mode

  # 1. Off by default: a plain build is a single manifest.
  k build -q -t plain "$work/bb" >/dev/null 2>"$w/err" || { tap_not_ok "$mode: plain build"; diag <"$w/err"; continue; }
  mt=$(k inspect plain 2>/dev/null | json_field 'j[0].get("MediaType","manifest")')
  if [ "$mt" = manifest ] && ! k inspect --sbom plain >"$w/out" 2>&1 && grep -q "has no attestations" "$w/out"; then
    tap_ok "$mode: without --sbom/--provenance the image is a single manifest with no attestation"
  else
    tap_not_ok "$mode: attestations off by default ($mt)"; diag <"$w/out"
  fi

  # 2. The Debian image with both attestations and the SBOM in a file too.
  if k build --sbom --provenance=mode=max --sbom-output "$w/sbom-file.json" --build-arg "URL=https://user:s3cret-tok@git.example/r.git" \
       -t localhost/deb:1 "$ctx" >"$w/id" 2>"$w/err"; then
    tap_ok "$mode: build --sbom --provenance=mode=max --sbom-output"
  else
    tap_not_ok "$mode: build with attestations"; diag <"$w/err"; continue
  fi
  if grep -q "SBOM (linux/[a-z0-9]*): $((dpkg_n + 3)) packages from 4 package database files (/app/node_modules/@scope/kept/package.json, /app/node_modules/left-pad/package.json, /usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA, /var/lib/dpkg/status)" "$w/err"; then
    tap_ok "$mode: the build says how many packages the SBOM lists and where they came from"
  else
    tap_not_ok "$mode: SBOM summary line"; diag <"$w/err"
  fi
  k inspect --sbom localhost/deb:1 >"$w/sbom.json" 2>"$w/err" || { tap_not_ok "$mode: inspect --sbom"; diag <"$w/err"; }
  sbom_list "$w/sbom.json" deb >"$w/sbom-deb.list"
  if [ "$dpkg_n" -gt 10 ] && cmp -s "$work/dpkg.list" "$w/sbom-deb.list"; then
    tap_ok "$mode: the SBOM lists exactly the $dpkg_n packages dpkg-query lists as installed (names and versions)"
  else
    tap_not_ok "$mode: SBOM deb packages = dpkg-query"; diff "$work/dpkg.list" "$w/sbom-deb.list" | head -20 | diag
  fi
  if ! grep -q '^kiln-removed-test=' "$w/sbom-deb.list" &&
     [ "$(sbom_list "$w/sbom.json" pypi)" = "six=1.16.0" ] &&
     [ "$(sbom_list "$w/sbom.json" npm | tr '\n' ' ')" = "@scope/kept=2.0.0 left-pad=1.3.0 " ]; then
    tap_ok "$mode: no removed (rc) package; the Python and npm packages are listed; the one RUN deleted is not"
  else
    tap_not_ok "$mode: other ecosystems"; sbom_list "$w/sbom.json" npm | diag
  fi
  if grep -q '"referenceLocator": "pkg:deb/debian/libc6@.*distro=debian-12"' "$w/sbom.json" &&
     python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a!=b)' \
       "$w/sbom.json" "$w/sbom-file.json"; then
    tap_ok "$mode: purls name the distribution; --sbom-output wrote the same document inspect --sbom prints"
  else
    tap_not_ok "$mode: purls / --sbom-output"
  fi
  if validate "$w/sbom.json" >"$w/out" 2>&1; then
    tap_ok "$mode: the SBOM validates against the SPDX 2.3 JSON schema"
  else
    tap_not_ok "$mode: SPDX schema"; diag <"$w/out"
  fi

  # 3. The provenance.
  k inspect --provenance localhost/deb:1 >"$w/prov.json" 2>"$w/err" || { tap_not_ok "$mode: inspect --provenance"; diag <"$w/err"; }
  bb_digest=$(k inspect busybox 2>/dev/null | json_field 'j[0]["Digest"]')
  if python3 - "$w/prov.json" "$(sha256sum <"$ctx/Containerfile" | cut -d' ' -f1)" "$bb_digest" <<'PY' >"$w/out" 2>&1
import json, sys
p = json.load(open(sys.argv[1]))
d = p["buildDefinition"]
assert d["buildType"] == "https://mobyproject.org/buildkit@v1", d["buildType"]
assert d["externalParameters"]["configSource"]["digest"]["sha256"] == sys.argv[2], "containerfile digest"
assert d["externalParameters"]["request"]["args"]["build-arg:URL"] == "https://user:xxxxx@git.example/r.git"
deps = {x["uri"]: x["digest"]["sha256"] for x in d["resolvedDependencies"]}
assert "context" in deps and len(deps["context"]) == 64, deps
bb = [u for u in deps if u.startswith("pkg:docker/") and "busybox" in u]
assert bb and "sha256:" + deps[bb[0]] == sys.argv[3], (deps, sys.argv[3])
assert p["runDetails"]["builder"]["version"]["kiln"]
meta = p["runDetails"]["metadata"]["https://kiln.invalid/provenance/metadata"]
assert meta["mode"] == "max" and "COPY dpkg/" in meta["source"]["containerfile"]
assert any(s["instruction"].startswith("RUN") and s.get("layer") for s in meta["steps"]), meta["steps"]
PY
  then
    tap_ok "$mode: the SLSA v1 provenance names the Containerfile, context and busybox digests (max: source and steps)"
  else
    tap_not_ok "$mode: provenance"; diag <"$w/out"
  fi
  if grep -q "s3cret-tok" "$w/prov.json" || ! grep -q "user:xxxxx@git.example" "$w/prov.json"; then
    tap_not_ok "$mode: the credential of a build arg is redacted in the provenance"
  else
    tap_ok "$mode: the credential of a build arg is redacted in the provenance"
  fi

  # 4. The index: the image and its attestation manifest (BuildKit's form);
  #    the image ID is still the config's, and the image runs.
  k inspect localhost/deb:1 >"$w/insp.json" 2>&1
  if python3 - "$w/insp.json" "$(cat "$w/id")" <<'PY' >"$w/out" 2>&1
import json, sys
j = json.load(open(sys.argv[1]))[0]
assert j["IsManifestList"] and len(j["Manifests"]) == 2, j.get("Manifests")
img, att = j["Manifests"]
assert img["platform"]["os"] == "linux"
assert att["platform"] == {"architecture": "unknown", "os": "unknown"}, att
assert att["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
assert att["annotations"]["vnd.docker.reference.digest"] == img["digest"]
assert j["Id"] in sys.argv[2], (j["Id"], sys.argv[2])
PY
  then
    tap_ok "$mode: the image index holds the image and its attestation manifest (unknown/unknown, vnd.docker.reference.*)"
  else
    tap_not_ok "$mode: index shape"; diag <"$w/out"
  fi
  if k prune --check >"$w/out" 2>&1; then
    tap_ok "$mode: the store is consistent (prune --check) with the attestations in it"
  else
    tap_not_ok "$mode: prune --check"; diag <"$w/out"
  fi
  if [ "$(k run --rm localhost/deb:1 sh -c 'ls /app/node_modules; cat /etc/os-release | head -1' 2>/dev/null | tr '\n' ' ')" = '@scope left-pad PRETTY_NAME="Debian GNU/Linux 12 (bookworm)" ' ]; then
    tap_ok "$mode: kiln run of the image with attestations runs it (platform selection skips unknown/unknown)"
  else
    tap_not_ok "$mode: run"; k run --rm localhost/deb:1 ls /app/node_modules 2>&1 | diag
  fi

  if k save --format oci-archive -o "$w/deb.tar" localhost/deb:1 >/dev/null 2>"$w/out" &&
     kiln_as "$mode" "$w/loaded" load -i "$w/deb.tar" >/dev/null 2>>"$w/out" &&
     kiln_as "$mode" "$w/loaded" inspect --sbom localhost/deb:1 >"$w/loaded.json" 2>>"$w/out" &&
     cmp -s "$w/loaded.json" "$w/sbom.json"; then
    tap_ok "$mode: save --format oci-archive and load carry the attestations"
  else
    tap_not_ok "$mode: save/load of attestations"; diag <"$w/out"
  fi

  # 5. busybox: nothing to list, and it says so.
  if k build --sbom -t localhost/bb:1 "$work/bb" >/dev/null 2>"$w/err" &&
     grep -q "SBOM (linux/[a-z0-9]*): no package database found in the image: it lists no packages" "$w/err" &&
     k inspect --sbom localhost/bb:1 >"$w/bb.json" 2>>"$w/err" &&
     python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["packages"])==1 and d["packages"][0]["primaryPackagePurpose"]=="CONTAINER" and "No package database was found" in d["comment"]' "$w/bb.json" &&
     validate "$w/bb.json" >>"$w/err" 2>&1; then
    tap_ok "$mode: --sbom on busybox lists no package, says so, and validates"
  else
    tap_not_ok "$mode: busybox SBOM"; diag <"$w/err"
  fi

  # 6. Refusals.
  k build --sbom --format docker -t x "$work/bb" >"$w/out" 2>&1; rc=$?
  if [ $rc = 2 ] && grep -q "not with --format docker" "$w/out"; then
    tap_ok "$mode: --sbom with --format docker is exit 2 naming why"
  else
    tap_not_ok "$mode: --format docker refusal (rc $rc)"; diag <"$w/out"
  fi
  k build --provenance=mode=huge -t x "$work/bb" >"$w/out" 2>&1; rc=$?
  if [ $rc = 2 ] && grep -q 'huge' "$w/out"; then
    tap_ok "$mode: an unknown --provenance mode is exit 2 naming it"
  else
    tap_not_ok "$mode: bad --provenance (rc $rc)"; diag <"$w/out"
  fi

  # 7. Push: the registry accepts the index with its attestation manifest,
  #    skopeo reads it, and the pulled image runs.
  if k push -q localhost/deb:1 "$R/deb:1" >"$w/out" 2>&1 &&
     skopeo inspect --raw --tls-verify=false "docker://$R/deb:1" >"$w/raw.json" 2>>"$w/out" &&
     att=$(python3 -c 'import json,sys; m=[d for d in json.load(open(sys.argv[1]))["manifests"] if d.get("annotations",{}).get("vnd.docker.reference.type")=="attestation-manifest"]; print(m[0]["digest"])' "$w/raw.json") &&
     skopeo inspect --raw --tls-verify=false "docker://$R/deb@$att" >"$w/att.json" 2>>"$w/out" &&
     python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["layers"]; t=sorted(x["annotations"]["in-toto.io/predicate-type"] for x in l); assert t==["https://slsa.dev/provenance/v1","https://spdx.dev/Document"], t; assert all(x["mediaType"]=="application/vnd.in-toto+json" for x in l)' "$w/att.json" &&
     skopeo inspect --tls-verify=false "docker://$R/deb:1" >/dev/null 2>>"$w/out"; then
    tap_ok "$mode: the registry accepts the index with attestations; skopeo inspect reads it and its in-toto layers"
  else
    tap_not_ok "$mode: push / skopeo inspect"; diag <"$w/out"
  fi
  p="$w/pulled"
  if kiln_as "$mode" "$p" pull -q "$R/deb:1" >/dev/null 2>"$w/out" &&
     [ "$(kiln_as "$mode" "$p" run --rm "$R/deb:1" ls /app/node_modules 2>>"$w/out" | tr '\n' ' ')" = "@scope left-pad " ]; then
    tap_ok "$mode: the pulled image runs as before"
  else
    tap_not_ok "$mode: pull and run"; diag <"$w/out"
  fi
  if kiln_as "$mode" "$w/all" pull -q --all-platforms "$R/deb:1" >/dev/null 2>"$w/out" &&
     kiln_as "$mode" "$w/all" inspect --sbom "$R/deb:1" >"$w/pulled-sbom.json" 2>>"$w/out" &&
     cmp -s "$w/pulled-sbom.json" "$w/sbom.json"; then
    tap_ok "$mode: pull --all-platforms keeps the attestations: inspect --sbom shows the same SBOM"
  else
    tap_not_ok "$mode: pull --all-platforms + inspect --sbom"; diag <"$w/out"
  fi
done
tap_done
