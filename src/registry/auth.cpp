// Credentials: WWW-Authenticate parsing, auth files (containers auth.json and
// docker config.json) and docker-credential-* helpers. Nothing here logs or
// returns a secret in an error message.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "kiln/fs.h"
#include "kiln/process.h"
#include "kiln/registry.h"
#include "registry/internal.h"

extern char** environ;

namespace kiln::registry {

// ------------------------------------------------------------ base64

std::string Base64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view in) {
  std::string clean;
  for (char ch : in)
    if (!std::isspace(static_cast<unsigned char>(ch)))
      clean.push_back(ch);
  if (clean.size() % 4 != 0)
    return std::nullopt;
  std::string out(clean.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0)
    return std::nullopt;
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (!clean.empty() && clean.back() == '=')
    --len;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=')
    --len;
  out.resize(len);
  return out;
}

// ------------------------------------------------------------ WWW-Authenticate

std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view h) {
  std::vector<AuthChallenge> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t' || h[i] == ','))
      ++i;
  };
  auto token = [&] {
    size_t start = i;
    while (i < h.size() && h[i] != ' ' && h[i] != '\t' && h[i] != ',' && h[i] != '=')
      ++i;
    return std::string(h.substr(start, i - start));
  };
  auto lower = [](std::string s) {
    for (auto& ch : s)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  };
  skip_ws();
  while (i < h.size()) {
    std::string scheme = token();
    if (scheme.empty())
      break;
    AuthChallenge ch;
    ch.scheme = lower(scheme);
    // Parameters until the next bare token (a new scheme).
    for (;;) {
      skip_ws();
      size_t save = i;
      std::string key = token();
      while (i < h.size() && (h[i] == ' ' || h[i] == '\t'))
        ++i;
      if (key.empty() || i >= h.size() || h[i] != '=') {
        i = save;  // a new challenge (or the end)
        break;
      }
      ++i;  // '='
      while (i < h.size() && (h[i] == ' ' || h[i] == '\t'))
        ++i;
      std::string value;
      if (i < h.size() && h[i] == '"') {
        ++i;
        while (i < h.size() && h[i] != '"') {
          if (h[i] == '\\' && i + 1 < h.size())
            ++i;
          value.push_back(h[i++]);
        }
        if (i < h.size())
          ++i;
      } else {
        while (i < h.size() && h[i] != ',' && h[i] != ' ' && h[i] != '\t')
          value.push_back(h[i++]);
      }
      ch.params[lower(key)] = value;
    }
    out.push_back(std::move(ch));
    skip_ws();
  }
  return out;
}

// ------------------------------------------------------------ auth files

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string HomeDir() {
  std::string home = Env("HOME");
  return home.empty() ? "/root" : home;
}

bool IsDockerHub(const std::string& host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

bool KeyMatches(const std::string& key, const std::string& registry) {
  std::string k = NormalizeKey(key);
  if (k == registry)
    return true;
  return IsDockerHub(k) && IsDockerHub(registry);
}

Expected<nlohmann::json> ReadAuthFile(const std::string& path) {
  auto text = ReadFile(path, size_t(4) << 20);
  if (!text)
    return std::move(text).error();
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kInvalidInput, path + ": not a valid auth file (bad JSON)");
  return j;
}

// Runs `docker-credential-NAME get` with the server URL on stdin. nullopt
// when the helper has no entry (it exits non-zero).
Expected<std::optional<Credentials>> RunHelper(const std::string& name,
                                               const std::string& registry) {
  for (char ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
      return Error(Errc::kInvalidInput, "bad credential helper name \"" + name + "\"");
  std::string prog = "docker-credential-" + name;
  CaptureOptions co;
  co.input = registry + "\n";
  co.max_out = size_t(1) << 20;
  auto run = RunCaptured({prog, "get"}, co);
  if (!run)
    return Error(Errc::kNotFound, "credential helper " + prog + ": " + run.error().message());
  if (!run->Succeeded())
    return std::optional<Credentials>();
  auto j = nlohmann::json::parse(run->out, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kInvalidInput, "credential helper " + prog + ": bad output");
  Credentials c;
  c.username = j.value("Username", "");
  c.password = j.value("Secret", "");
  if (c.empty())
    return std::optional<Credentials>();
  return std::optional<Credentials>(c);
}

Expected<std::optional<Credentials>> FromEntry(const nlohmann::json& entry,
                                               const std::string& path) {
  if (!entry.is_object())
    return std::optional<Credentials>();
  if (entry.contains("identitytoken") && entry["identitytoken"].is_string() &&
      !entry["identitytoken"].get<std::string>().empty()) {
    return std::optional<Credentials>(
        Credentials{"<token>", entry["identitytoken"].get<std::string>()});
  }
  if (!entry.contains("auth") || !entry["auth"].is_string())
    return std::optional<Credentials>();
  auto decoded = Base64Decode(entry["auth"].get<std::string>());
  if (!decoded)
    return Error(Errc::kInvalidInput, path + ": bad base64 in an \"auth\" entry");
  auto colon = decoded->find(':');
  if (colon == std::string::npos)
    return Error(Errc::kInvalidInput, path + ": an \"auth\" entry is not user:password");
  return std::optional<Credentials>(
      Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)});
}

// Where `login` writes when no --authfile is given: the first candidate
// whose directory exists or can be created and is writable.
std::string DefaultWriteTarget() {
  for (const auto& c : AuthFileCandidates("")) {
    std::string dir = DirName(c);
    if (::access(dir.c_str(), W_OK) == 0)
      return c;
    if (MakeDirs(dir, 0700) && ::access(dir.c_str(), W_OK) == 0)
      return c;
  }
  return JoinPath(HomeDir(), ".docker/config.json");
}

}  // namespace

std::string NormalizeKey(std::string key) {
  for (std::string_view p : {"https://", "http://"})
    if (key.rfind(p, 0) == 0)
      key = key.substr(p.size());
  if (auto slash = key.find('/'); slash != std::string::npos)
    key = key.substr(0, slash);
  return key;
}

std::vector<std::string> AuthFileCandidates(const std::string& authfile) {
  if (!authfile.empty())
    return {authfile};
  std::vector<std::string> out;
  if (auto v = Env("REGISTRY_AUTH_FILE"); !v.empty())
    out.push_back(v);
  if (auto v = Env("XDG_RUNTIME_DIR"); !v.empty())
    out.push_back(JoinPath(v, "containers/auth.json"));
  out.push_back(JoinPath(UserConfigDir(), "containers/auth.json"));
  if (auto v = Env("DOCKER_CONFIG"); !v.empty())
    out.push_back(JoinPath(v, "config.json"));
  else
    out.push_back(JoinPath(HomeDir(), ".docker/config.json"));
  return out;
}

Expected<std::optional<Credentials>> LookupCredentials(const std::string& registry,
                                                       const std::string& authfile) {
  for (const auto& path : AuthFileCandidates(authfile)) {
    if (!PathExists(path)) {
      if (!authfile.empty())
        return Error(Errc::kNotFound, "auth file " + path + " does not exist");
      continue;
    }
    KILN_ASSIGN_OR_RETURN(nlohmann::json j, ReadAuthFile(path));
    if (auto it = j.find("credHelpers"); it != j.end() && it->is_object()) {
      for (auto h = it->begin(); h != it->end(); ++h) {
        if (KeyMatches(h.key(), registry) && h.value().is_string()) {
          KILN_ASSIGN_OR_RETURN(auto c, RunHelper(h.value().get<std::string>(), registry));
          if (c)
            return c;
        }
      }
    }
    if (auto it = j.find("auths"); it != j.end() && it->is_object()) {
      // An exact key beats a normalised one ("host" before "https://host/v1/").
      for (int pass = 0; pass < 2; ++pass) {
        for (auto e = it->begin(); e != it->end(); ++e) {
          bool match = pass == 0 ? e.key() == registry : KeyMatches(e.key(), registry);
          if (!match)
            continue;
          KILN_ASSIGN_OR_RETURN(auto c, FromEntry(e.value(), path));
          if (c)
            return c;
        }
      }
    }
    if (auto it = j.find("credsStore"); it != j.end() && it->is_string() &&
                                        !it->get<std::string>().empty()) {
      auto c = RunHelper(it->get<std::string>(), registry);
      if (c && *c)
        return c;
    }
  }
  return std::optional<Credentials>();
}

Expected<std::string> StoreCredentials(const std::string& registry, const Credentials& creds,
                                       const std::string& authfile) {
  std::string path = authfile.empty() ? DefaultWriteTarget() : authfile;
  nlohmann::json j = nlohmann::json::object();
  if (PathExists(path)) {
    KILN_ASSIGN_OR_RETURN(j, ReadAuthFile(path));
  }
  if (!j.contains("auths") || !j["auths"].is_object())
    j["auths"] = nlohmann::json::object();
  j["auths"][registry] = {{"auth", Base64Encode(creds.username + ":" + creds.password)}};
  KILN_TRY(MakeDirs(DirName(path), 0700));
  if (auto s = WriteFileAtomic(path, j.dump(1, '\t') + "\n", 0600); !s)
    return std::move(s).error().WithContext("write auth file " + path);
  return path;
}

Status RemoveCredentials(const std::string& registry, bool all, const std::string& authfile) {
  bool removed = false;
  for (const auto& path : AuthFileCandidates(authfile)) {
    if (!PathExists(path))
      continue;
    KILN_ASSIGN_OR_RETURN(nlohmann::json j, ReadAuthFile(path));
    auto it = j.find("auths");
    if (it == j.end() || !it->is_object())
      continue;
    bool changed = false;
    if (all) {
      changed = !it->empty();
      *it = nlohmann::json::object();
    } else {
      for (auto e = it->begin(); e != it->end();) {
        if (e.key() == registry || KeyMatches(e.key(), registry)) {
          e = it->erase(e);
          changed = true;
        } else {
          ++e;
        }
      }
    }
    if (!changed)
      continue;
    if (auto s = WriteFileAtomic(path, j.dump(1, '\t') + "\n", 0600); !s)
      return std::move(s).error().WithContext("write auth file " + path);
    removed = true;
  }
  if (!removed)
    return Error(Errc::kNotFound, all ? std::string("no credentials stored")
                                      : "not logged in to " + registry);
  return Ok();
}

}  // namespace kiln::registry
