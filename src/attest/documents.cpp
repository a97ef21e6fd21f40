// Scan() over what was read, purls, and the documents: SPDX 2.3 JSON, the
// SLSA v1 provenance predicate, in-toto statements (attest.h). Pure.
#include <algorithm>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "kiln/attest.h"
#include "kiln/digest.h"
#include "kiln/keyvalue.h"

namespace kiln::attest {

namespace {

using json = nlohmann::ordered_json;

/// purl percent-encoding: everything but unreserved characters.
std::string PctEncode(std::string_view s, bool keep_slash = false) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Purl(const Package& p, const OsRelease& os) {
  std::string distro = os.id.empty() ? "" : os.id + (os.version_id.empty() ? "" : "-" + os.version_id);
  auto qualifiers = [&](std::string q) {
    if (!distro.empty())
      q += std::string(q.empty() ? "" : "&") + "distro=" + PctEncode(distro);
    return q.empty() ? q : "?" + q;
  };
  if (p.type == "deb" || p.type == "apk") {
    std::string ns = !os.id.empty() ? os.id : (p.type == "deb" ? "debian" : "alpine");
    std::string q = p.arch.empty() ? "" : "arch=" + PctEncode(p.arch);
    return "pkg:" + p.type + "/" + PctEncode(ns) + "/" + PctEncode(p.name) + "@" + PctEncode(p.version) +
           qualifiers(q);
  }
  if (p.type == "pypi") {
    std::string name = Lower(p.name);
    std::replace(name.begin(), name.end(), '_', '-');
    return "pkg:pypi/" + PctEncode(name) + "@" + PctEncode(p.version);
  }
  if (p.type == "npm") {
    std::string name = p.name;
    if (!name.empty() && name[0] == '@' && name.find('/') != std::string::npos) {
      size_t slash = name.find('/');
      return "pkg:npm/" + PctEncode(name.substr(0, slash)) + "/" + PctEncode(name.substr(slash + 1)) + "@" +
             PctEncode(p.version);
    }
    return "pkg:npm/" + PctEncode(name) + "@" + PctEncode(p.version);
  }
  return "pkg:" + p.type + "/" + PctEncode(p.name, true) + "@" + PctEncode(p.version);
}

/// SPDX ids: "SPDXRef-" then letters, digits, '.' and '-'.
std::string IdPart(std::string_view s) {
  std::string out;
  for (unsigned char c : s)
    out += std::isalnum(c) || c == '.' || c == '-' ? static_cast<char>(c) : '-';
  return out;
}

/// "Person: Name (mail)" from "Name <mail>"; NOASSERTION when empty.
std::string Supplier(const std::string& who) {
  if (who.empty())
    return "NOASSERTION";
  std::string s = who;
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '<', '(');
  std::replace(s.begin(), s.end(), '>', ')');
  return "Person: " + s;
}

const char* SourceName(const std::string& type) {
  if (type == "deb")
    return "the dpkg database";
  if (type == "apk")
    return "the apk database";
  if (type == "pypi")
    return "Python package metadata";
  if (type == "npm")
    return "an npm package.json";
  return "Go build information";
}

std::string ImageName(const Subject& s) {
  return s.name.empty() ? s.manifest.str() : s.name;
}

}  // namespace

ScanResult Scan(const std::map<std::string, std::string>& files) {
  ScanResult r;
  auto os_it = files.find("etc/os-release");
  if (os_it == files.end() || os_it->second.empty())
    os_it = files.find("usr/lib/os-release");
  if (os_it != files.end())
    r.os = ParseOsRelease(os_it->second);
  for (const auto& [path, data] : files) {
    std::string file = "/" + path;
    std::vector<Package> found;
    switch (Classify(path, 0755)) {
      case FileKind::kDpkgStatus:
      case FileKind::kDpkgStatusD:
        found = ParseDpkgStatus(data, file, &r.warnings);
        break;
      case FileKind::kApkInstalled:
        found = ParseApkInstalled(data, file, &r.warnings);
        break;
      case FileKind::kPythonMetadata:
        if (auto p = ParsePythonMetadata(data, file))
          found.push_back(std::move(*p));
        break;
      case FileKind::kNpmPackage:
        if (auto p = ParseNpmPackageJson(data, file))
          found.push_back(std::move(*p));
        break;
      case FileKind::kExecutable:
        if (!data.empty())
          found = ParseGoBuildInfo(data, file);
        break;
      default:
        break;
    }
    if (found.empty())
      continue;
    r.databases.push_back(file);
    for (Package& p : found) {
      p.purl = Purl(p, r.os);
      r.packages.push_back(std::move(p));
    }
  }
  auto key = [](const Package& p) { return std::tie(p.type, p.name, p.version, p.arch, p.source); };
  std::sort(r.packages.begin(), r.packages.end(), [&](const Package& a, const Package& b) { return key(a) < key(b); });
  r.packages.erase(std::unique(r.packages.begin(), r.packages.end(),
                               [&](const Package& a, const Package& b) { return key(a) == key(b); }),
                   r.packages.end());
  return r;
}

std::string SubjectPurl(const Subject& s) {
  std::string name = s.name, version;
  // pkg:docker/NAMESPACE/NAME@TAG: the tag (or digest) is the version.
  size_t at = name.find('@');
  size_t colon = name.rfind(':');
  size_t slash = name.rfind('/');
  if (at != std::string::npos) {
    version = name.substr(at + 1);
    name = name.substr(0, at);
  } else if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    version = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  if (name.empty()) {
    name = "image";
    version = s.manifest.str();
  }
  std::string out = "pkg:docker/" + PctEncode(name, true);
  if (!version.empty())
    out += "@" + PctEncode(version);
  out += "?platform=" + PctEncode(s.platform.str());
  return out;
}

std::string SpdxDocument(const ScanResult& scan, const Subject& subject) {
  json doc;
  doc["spdxVersion"] = "SPDX-2.3";
  doc["dataLicense"] = "CC0-1.0";
  doc["SPDXID"] = "SPDXRef-DOCUMENT";
  doc["name"] = ImageName(subject);
  doc["documentNamespace"] = "https://kiln.invalid/spdx/" + PctEncode(ImageName(subject), true) + "-" +
                             subject.manifest.hex();
  doc["creationInfo"] = {{"created", subject.created.empty() ? "1970-01-01T00:00:00Z" : subject.created},
                         {"creators", {"Tool: kiln-" + subject.tool_version}}};
  if (scan.packages.empty())
    doc["comment"] = "No package database was found in the image (looked for dpkg, apk, Python, npm and Go build "
                     "information): it lists no packages.";
  else
    doc["comment"] = "Packages read by kiln from the image's package databases: " + [&] {
      std::string s;
      for (const auto& d : scan.databases)
        s += (s.empty() ? "" : ", ") + d;
      return s;
    }();
  json packages = json::array();
  json relationships = json::array();
  const std::string root_id = "SPDXRef-Image";
  json root;
  root["name"] = ImageName(subject);
  root["SPDXID"] = root_id;
  root["versionInfo"] = subject.manifest.str();
  root["downloadLocation"] = "NOASSERTION";
  root["filesAnalyzed"] = false;
  root["licenseConcluded"] = "NOASSERTION";
  root["licenseDeclared"] = "NOASSERTION";
  root["copyrightText"] = "NOASSERTION";
  root["primaryPackagePurpose"] = "CONTAINER";
  root["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", subject.manifest.hex()}}});
  root["externalRefs"] = json::array(
      {{{"referenceCategory", "PACKAGE-MANAGER"}, {"referenceType", "purl"}, {"referenceLocator", SubjectPurl(subject)}}});
  packages.push_back(root);
  relationships.push_back(
      {{"spdxElementId", "SPDXRef-DOCUMENT"}, {"relationshipType", "DESCRIBES"}, {"relatedSpdxElement", root_id}});
  std::set<std::string> ids;
  for (const Package& p : scan.packages) {
    std::string id = "SPDXRef-Package-" + IdPart(p.type) + "-" + IdPart(p.name) + "-" +
                     Digest::Of(p.purl + "\n" + p.source).hex().substr(0, 16);
    if (!ids.insert(id).second)
      continue;
    json j;
    j["name"] = p.name;
    j["SPDXID"] = id;
    j["versionInfo"] = p.version;
    j["supplier"] = Supplier(p.supplier);
    j["downloadLocation"] = "NOASSERTION";
    j["filesAnalyzed"] = false;
    j["licenseConcluded"] = "NOASSERTION";
    j["licenseDeclared"] = "NOASSERTION";
    j["copyrightText"] = "NOASSERTION";
    j["sourceInfo"] = std::string("acquired package info from ") + SourceName(p.type) + ": " + p.source;
    if (!p.license.empty())
      j["comment"] = "license (as the package states it): " + p.license;
    j["externalRefs"] = json::array(
        {{{"referenceCategory", "PACKAGE-MANAGER"}, {"referenceType", "purl"}, {"referenceLocator", p.purl}}});
    j["primaryPackagePurpose"] = "LIBRARY";
    packages.push_back(std::move(j));
    relationships.push_back({{"spdxElementId", root_id}, {"relationshipType", "CONTAINS"}, {"relatedSpdxElement", id}});
  }
  doc["packages"] = std::move(packages);
  doc["relationships"] = std::move(relationships);
  return doc.dump(2) + "\n";
}

std::string InTotoStatement(std::string_view predicate_type, const std::string& predicate_json,
                            const Subject& subject) {
  json st;
  st["_type"] = "https://in-toto.io/Statement/v0.1";
  st["predicateType"] = std::string(predicate_type);
  st["subject"] = json::array({{{"name", SubjectPurl(subject)}, {"digest", {{"sha256", subject.manifest.hex()}}}}});
  st["predicate"] = json::parse(predicate_json);
  return st.dump() + "\n";
}

std::string RedactUrlCredentials(const std::string& text) {
  std::string out = text;
  size_t pos = 0;
  while ((pos = out.find("://", pos)) != std::string::npos) {
    size_t start = pos + 3;
    size_t end = out.find_first_of("/?# \t\n\"", start);
    if (end == std::string::npos)
      end = out.size();
    size_t at = out.rfind('@', end);
    if (at != std::string::npos && at >= start) {
      size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at)
        out.replace(colon + 1, at - colon - 1, "xxxxx");
      else
        out.replace(start, at - start, "xxxxx");
    }
    pos = start;
  }
  return out;
}

std::string ProvenancePredicate(const ProvenanceInput& in) {
  json args = json::object();
  for (const auto& [k, v] : in.build_args)
    args["build-arg:" + k] = RedactUrlCredentials(v);
  if (!in.target.empty())
    args["target"] = in.target;
  if (!in.platforms.empty()) {
    std::string p;
    for (const auto& s : in.platforms)
      p += (p.empty() ? "" : ",") + s;
    args["platform"] = p;
  }
  json params;
  params["configSource"] = {{"uri", RedactUrlCredentials(in.containerfile_name)},
                            {"digest", {{"sha256", Digest::Of(in.containerfile_text).hex()}}},
                            {"path", RedactUrlCredentials(in.containerfile_name)}};
  params["request"] = {{"frontend", "dockerfile.v0"},
                       {"args", args},
                       {"locals", json::array({{{"name", "context"}}, {{"name", "dockerfile"}}})}};
  if (in.max) {
    json secrets = json::array(), ssh = json::array();
    for (const auto& s : in.secret_ids)
      secrets.push_back({{"id", s}});
    for (const auto& s : in.ssh_ids)
      ssh.push_back({{"id", s}});
    if (!secrets.empty())
      params["secrets"] = secrets;
    if (!ssh.empty())
      params["ssh"] = ssh;
  }
  json deps = json::array();
  for (const Material& m : in.materials)
    deps.push_back({{"uri", RedactUrlCredentials(m.uri)}, {"digest", {{"sha256", m.digest.hex()}}}});
  if (in.context_digest.valid())
    deps.push_back({{"uri", "context"}, {"digest", {{"sha256", in.context_digest.hex()}}}});
  json internal = {{"builderPlatform", in.build_platform}};
  json def;
  def["buildType"] = "https://mobyproject.org/buildkit@v1";
  def["externalParameters"] = params;
  def["internalParameters"] = internal;
  def["resolvedDependencies"] = deps;
  json meta;
  meta["invocationID"] = in.invocation_id;
  meta["startedOn"] = in.started_on;
  meta["finishedOn"] = in.finished_on;
  json kiln_meta = {{"completeness", {{"request", true}, {"context", in.context_digest.valid()}}}};
  if (in.max) {
    kiln_meta["source"] = {{"containerfile", in.containerfile_text}};
    json steps = json::array();
    for (const auto& [instruction, layer] : in.steps) {
      json s = {{"instruction", RedactUrlCredentials(instruction)}};
      if (layer.valid())
        s["layer"] = layer.str();
      steps.push_back(std::move(s));
    }
    kiln_meta["steps"] = steps;
    json contexts = json::object();
    for (const auto& [name, where] : in.build_contexts)
      contexts[name] = RedactUrlCredentials(where);
    if (!contexts.empty())
      kiln_meta["buildContexts"] = contexts;
    if (!in.network.empty())
      kiln_meta["network"] = in.network;
  }
  kiln_meta["mode"] = in.max ? "max" : "min";
  meta["https://kiln.invalid/provenance/metadata"] = kiln_meta;
  json run;
  run["builder"] = {{"id", ""}, {"version", {{"kiln", in.tool_version}}}};
  run["metadata"] = meta;
  json pred;
  pred["buildDefinition"] = def;
  pred["runDetails"] = run;
  return pred.dump();
}

Expected<bool> ParseSbomFlag(std::string_view value) {
  if (value == "true" || value == "1")
    return true;
  if (value == "false" || value == "0")
    return false;
  return Error(Errc::kInvalidInput, "--sbom=" + std::string(value) +
                                        ": want true or false (kiln makes the SBOM itself: no scanner preset or "
                                        "generator image)");
}

Expected<std::string> ParseProvenanceFlag(std::string_view value) {
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidInput, "--provenance=" + std::string(value) + ": " + why);
  };
  if (value == "true" || value == "1")
    return std::string("min");
  if (value == "false" || value == "0")
    return std::string();
  if (value == "min" || value == "max")
    return std::string(value);
  auto attrs = ParseKeyValueList(value, "--provenance");
  if (!attrs)
    return bad("want true, false, min, max or mode=min|max[,version=v1]");
  std::string mode = "min";
  for (const auto& [key, v] : *attrs) {
    if (key == "mode" && (v == "min" || v == "max"))
      mode = v;
    else if (key == "version" && v != "v1")
      return bad("kiln writes SLSA provenance v1 only (version=v1)");
    else if (key != "version")
      return bad("want true, false, min, max or mode=min|max[,version=v1]");
  }
  return mode;
}

}  // namespace kiln::attest
