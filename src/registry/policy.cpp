// containers-policy.json(5) for the docker transport (include/kiln/sigstore.h).
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "kiln/fs.h"
#include "kiln/sigstore.h"
#include "registry/internal.h"

namespace kiln::registry {
namespace {

using json = nlohmann::json;
using Type = PolicyRequirement::Type;

PolicyRequirement Unsupported(std::string what) {
  PolicyRequirement r;
  r.type = Type::kUnsupported;
  r.unsupported = std::move(what);
  return r;
}

Expected<PolicyRequirement> ParseRequirement(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    return Error(Errc::kInvalidInput, where + ": a requirement must be an object with a \"type\"");
  std::string type = j["type"].get<std::string>();
  PolicyRequirement r;
  if (type == "insecureAcceptAnything")
    return r;
  if (type == "reject") {
    r.type = Type::kReject;
    return r;
  }
  if (type == "signedBy")
    return Unsupported("signedBy (GPG simple signing)");
  if (type != "sigstoreSigned")
    return Error(Errc::kInvalidInput, where + ": unknown requirement type \"" + type + "\"");
  r.type = Type::kSigstoreSigned;
  for (const char* k : {"fulcio", "rekorPublicKeyPath", "rekorPublicKeyData", "pki"})
    if (j.contains(k))
      return Unsupported(std::string("sigstoreSigned with ") + k);
  std::vector<std::string> paths;
  if (j.contains("keyPath"))
    paths.push_back(j["keyPath"].is_string() ? j["keyPath"].get<std::string>() : "");
  if (j.contains("keyPaths") && j["keyPaths"].is_array())
    for (const auto& p : j["keyPaths"])
      paths.push_back(p.is_string() ? p.get<std::string>() : "");
  for (const auto& p : paths) {
    if (p.empty() || p[0] != '/')
      return Error(Errc::kInvalidInput, where + ": keyPath \"" + p + "\" must be an absolute path");
    auto text = ReadFile(p, 1 << 20);
    if (!text)
      return Unsupported("keyPath " + p + ": " + text.error().message());
    r.public_keys_pem.push_back(*text);
  }
  auto datas = [&](const json& v) -> Status {
    auto d = v.is_string() ? Base64Decode(v.get<std::string>()) : std::nullopt;
    if (!d)
      return Error(Errc::kInvalidInput, where + ": keyData must be base64");
    r.public_keys_pem.push_back(*d);
    return Ok();
  };
  if (j.contains("keyData"))
    KILN_TRY(datas(j["keyData"]));
  if (j.contains("keyDatas") && j["keyDatas"].is_array())
    for (const auto& v : j["keyDatas"])
      KILN_TRY(datas(v));
  if (r.public_keys_pem.empty())
    return Error(Errc::kInvalidInput, where + ": sigstoreSigned needs keyPath, keyPaths, keyData or keyDatas");
  if (j.contains("signedIdentity")) {
    const json& si = j["signedIdentity"];
    if (!si.is_object() || !si.contains("type") || !si["type"].is_string())
      return Error(Errc::kInvalidInput, where + ": signedIdentity must be an object with a \"type\"");
    r.identity = si["type"].get<std::string>();
    if (r.identity == "exactReference" || r.identity == "exactRepository") {
      const char* key = r.identity == "exactReference" ? "dockerReference" : "dockerRepository";
      if (!si.contains(key) || !si[key].is_string())
        return Error(Errc::kInvalidInput, where + ": signedIdentity " + r.identity + " needs " + key);
      r.identity_value = si[key].get<std::string>();
    } else if (r.identity == "remapIdentity") {
      return Unsupported("signedIdentity remapIdentity");
    } else if (r.identity != "matchExact" && r.identity != "matchRepoDigestOrExact" &&
               r.identity != "matchRepository") {
      return Error(Errc::kInvalidInput, where + ": unknown signedIdentity type \"" + r.identity + "\"");
    }
  }
  return r;
}

Expected<std::vector<PolicyRequirement>> ParseList(const json& j, const std::string& where) {
  if (!j.is_array() || j.empty())
    return Error(Errc::kInvalidInput, where + ": must be a non-empty list of requirements");
  std::vector<PolicyRequirement> out;
  for (size_t i = 0; i < j.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(auto r, ParseRequirement(j[i], where + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(r));
  }
  return out;
}

// What a signature's docker-reference must be for `ref` under `req`.
bool IdentityMatches(const PolicyRequirement& req, const ImageReference& ref, const ImageReference& signed_ref) {
  const std::string& id = req.identity;
  if (id == "matchRepository")
    return signed_ref.Name() == ref.Name();
  if (id == "exactReference") {
    auto want = ImageReference::Parse(req.identity_value);
    return want && signed_ref.str() == want->str();
  }
  if (id == "exactRepository") {
    auto want = ImageReference::Parse(req.identity_value);
    return want && signed_ref.Name() == want->Name();
  }
  if (id == "matchRepoDigestOrExact" && ref.digest.valid())
    return signed_ref.Name() == ref.Name();
  return signed_ref.str() == ref.str();  // matchExact, or a tag under matchRepoDigestOrExact
}

// Why `sig` does not satisfy `req` for (ref, manifest); "" when it does.
std::string Check(const PolicyRequirement& req, const ImageReference& ref, const Digest& manifest,
                  const SigstoreSignature& sig) {
  std::string why = "no key of the policy made it";
  bool key_ok = false;
  for (const auto& key : req.public_keys_pem) {
    auto s = SigstoreVerifySignature(key, sig.payload, sig.signature_b64);
    if (s) {
      key_ok = true;
      break;
    }
    why = s.error().message();
  }
  if (!key_ok)
    return why;
  json p = json::parse(sig.payload, nullptr, false);
  try {
    const json& c = p.at("critical");
    if (c.at("type").get<std::string>() != "cosign container image signature")
      return "the payload's type is not a cosign container image signature";
    std::string digest = c.at("image").at("docker-manifest-digest").get<std::string>();
    if (digest != manifest.str())
      return "it signs manifest " + digest + ", not " + manifest.str();
    auto signed_ref = ImageReference::Parse(c.at("identity").at("docker-reference").get<std::string>());
    if (!signed_ref)
      return "its docker-reference is not a reference";
    if (!IdentityMatches(req, ref, *signed_ref))
      return "it was signed for " + signed_ref->str() + ", which signedIdentity " + req.identity +
             " does not accept for " + ref.str();
  } catch (const json::exception&) {
    return "its payload is not a simple-signing JSON document";
  }
  return "";
}

}  // namespace

Expected<Policy> ParsePolicy(std::string_view text, const std::string& file) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kInvalidInput, file + ": not a JSON object");
  Policy p;
  p.file = file;
  if (!j.contains("default"))
    return Error(Errc::kInvalidInput, file + ": \"default\" is missing");
  KILN_ASSIGN_OR_RETURN(p.default_requirements, ParseList(j["default"], file + ": default"));
  if (j.contains("transports")) {
    if (!j["transports"].is_object())
      return Error(Errc::kInvalidInput, file + ": transports must be an object");
    auto d = j["transports"].find("docker");
    if (d != j["transports"].end()) {
      if (!d->is_object())
        return Error(Errc::kInvalidInput, file + ": transports.docker must be an object");
      for (const auto& [scope, list] : d->items()) {
        KILN_ASSIGN_OR_RETURN(auto reqs, ParseList(list, file + ": transports.docker \"" + scope + "\""));
        p.docker[scope] = std::move(reqs);
      }
    }
  }
  return p;
}

Expected<Policy> LoadPolicy(const std::string& override_path) {
  std::string path = override_path;
  if (path.empty()) {
    const char* home = std::getenv("HOME");
    struct stat st;
    std::string user = home && *home ? std::string(home) + "/.config/containers/policy.json" : "";
    path = !user.empty() && ::stat(user.c_str(), &st) == 0 ? user : "/etc/containers/policy.json";
  }
  auto text = ReadFile(path, 4 << 20);
  if (!text) {
    if (text.error().code() == Errc::kNotFound && override_path.empty()) {
      Policy accept;  // no policy file anywhere: accept anything (docs/supply-chain.md)
      accept.default_requirements.emplace_back();
      return accept;
    }
    return std::move(text).error().WithContext("signature policy");
  }
  return ParsePolicy(*text, path);
}

std::pair<const std::vector<PolicyRequirement>*, std::string> PolicyScope(const Policy& policy,
                                                                           const ImageReference& ref) {
  auto find = [&](const std::string& scope) -> const std::vector<PolicyRequirement>* {
    auto it = policy.docker.find(scope);
    return it == policy.docker.end() ? nullptr : &it->second;
  };
  // The reference, its repository, each parent namespace, the host, then
  // wildcards of the host's parent domains (containers/image's order).
  std::vector<std::string> scopes{ref.str(), ref.Name()};
  std::string name = ref.Name();
  for (size_t slash = name.rfind('/'); slash != std::string::npos; slash = name.rfind('/')) {
    name = name.substr(0, slash);
    scopes.push_back(name);
  }
  std::string host = ref.domain.substr(0, ref.domain.find(':'));
  for (size_t dot = host.find('.'); dot != std::string::npos; dot = host.find('.', dot + 1))
    scopes.push_back("*" + host.substr(dot));
  for (const auto& s : scopes)
    if (auto* r = find(s))
      return {r, s};
  if (auto* r = find(""))
    return {r, "docker default"};
  return {&policy.default_requirements, "default"};
}

bool NeedsSignatures(const std::vector<PolicyRequirement>& requirements) {
  for (const auto& r : requirements)
    if (r.type == Type::kSigstoreSigned)
      return true;
  return false;
}

Status EvaluatePolicy(const Policy& policy, const ImageReference& ref, const Digest& manifest,
                      const std::vector<SigstoreSignature>& signatures) {
  auto [reqs, scope] = PolicyScope(policy, ref);
  std::string where = ref.str() + ": refused by the signature policy " +
                      (policy.file.empty() ? std::string("(none)") : policy.file) + " (scope \"" + scope + "\"): ";
  for (const auto& req : *reqs) {
    switch (req.type) {
      case Type::kAcceptAnything:
        break;
      case Type::kReject:
        return Error(Errc::kFailed, where + "the requirement is \"reject\"");
      case Type::kUnsupported:
        return Error(Errc::kUnsupported, where + req.unsupported + " cannot be checked by kiln, so the image is "
                                                 "refused (fail closed)");
      case Type::kSigstoreSigned: {
        if (signatures.empty())
          return Error(Errc::kFailed, where + "no sigstore signature for manifest " + manifest.str());
        std::string why;
        bool ok = false;
        for (const auto& sig : signatures) {
          why = Check(req, ref, manifest, sig);
          if (why.empty()) {
            ok = true;
            break;
          }
        }
        if (!ok)
          return Error(Errc::kFailed, where + "no valid sigstore signature for manifest " + manifest.str() + " (" +
                                          std::to_string(signatures.size()) + " found; " + why + ")");
        break;
      }
    }
  }
  return Ok();
}

}  // namespace kiln::registry
