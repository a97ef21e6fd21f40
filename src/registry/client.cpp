// RegistryClient: the distribution-spec calls, with auth (basic, Bearer token
// flow with a per-scope cache), redirects that never carry Authorization to
// another origin, bounded retries of transient failures, and blob transfers
// that are verified before anyone may use them.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <semaphore>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/oci.h"
#include "kiln/registry.h"
#include "registry/internal.h"

namespace kiln::registry {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------ the client

namespace {

/// A request of the registry API: `method` on BASE/v2/`path`.
HttpRequest V2Request(const char* method, const std::string& base, const std::string& path) {
  HttpRequest req;
  req.method = method;
  req.url = base + "/v2/" + path;
  return req;
}

struct Token {
  std::string header;  // full Authorization value
  Clock::time_point expires;
};

std::string ScopeFor(const std::string& repo, bool push) {
  return "repository:" + repo + (push ? ":pull,push" : ":pull");
}

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '/' ||
        ch == ':') {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(kHex[ch >> 4]);
      out.push_back(kHex[ch & 15]);
    }
  }
  return out;
}

}  // namespace

struct RegistryClient::Impl {
  std::unique_ptr<HttpTransport> owned_transport;
  HttpTransport* transport = nullptr;
  std::string host;  // for URLs (docker.io -> registry-1.docker.io)
  TlsConfig tls;

  std::mutex mu;  // guards everything below
  std::string base_url;
  std::string origin;
  bool creds_loaded = false;
  std::optional<Credentials> creds;
  std::string auth_scheme;  // "", "basic" or "bearer"
  std::map<std::string, std::string> bearer;  // realm, service
  std::map<std::string, Token> tokens;        // by scope

  std::counting_semaphore<256> slots{4};
  /// One of the max_connections transfer slots, held while alive.
  struct Slot {
    explicit Slot(Impl* impl) : sem(&impl->slots) { sem->acquire(); }
    ~Slot() { sem->release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    std::counting_semaphore<256>* sem;
  };
};

RegistryClient::RegistryClient(std::string registry, ClientOptions options)
    : registry_(std::move(registry)), options_(std::move(options)), impl_(new Impl) {}

RegistryClient::~RegistryClient() = default;

Expected<std::unique_ptr<RegistryClient>> RegistryClient::Create(std::string registry,
                                                                 ClientOptions options) {
  if (registry.empty() || registry.find_first_of("/ \t\r\n@") != std::string::npos)
    return Error(Errc::kInvalidInput, "bad registry name \"" + registry + "\"");
  options.max_connections = std::clamp(options.max_connections, 1, 64);
  options.max_attempts = std::max(options.max_attempts, 1);
  std::unique_ptr<RegistryClient> c(new RegistryClient(registry, std::move(options)));
  Impl& impl = *c->impl_;
  for (int i = 4; i < c->options_.max_connections; ++i)
    impl.slots.release();
  for (int i = c->options_.max_connections; i < 4; ++i)
    impl.slots.acquire();
  if (c->options_.transport) {
    impl.transport = c->options_.transport;
  } else {
    impl.owned_transport = MakeCurlTransport();
    impl.transport = impl.owned_transport.get();
  }
  impl.host = registry == "docker.io" ? "registry-1.docker.io" : registry;
  impl.tls.verify = c->options_.tls_verify;
  if (!c->options_.cert_dir.empty()) {
    if (!PathExists(c->options_.cert_dir))
      return Error(Errc::kInvalidInput, "--cert-dir " + c->options_.cert_dir + " does not exist");
    KILN_TRY(LoadCertDir(c->options_.cert_dir, &impl.tls));
  } else {
    KILN_TRY(LoadCertDir("/etc/containers/certs.d/" + registry, &impl.tls));
    KILN_TRY(LoadCertDir("/etc/docker/certs.d/" + registry, &impl.tls));
  }
  if (c->options_.credentials) {
    impl.creds = c->options_.credentials;
    impl.creds_loaded = true;
  }
  return c;
}

// The pieces below are free functions over Impl so that the retry, auth and
// redirect logic reads top to bottom.
namespace {

struct Ctx {
  RegistryClient::Impl* impl;
  const ClientOptions* opts;
  const std::string* registry;
};

// Fetches a Bearer token for `scope`, with the user's credentials when there
// are any. The token body is capped at 1 MiB (docs/security.md I5).
Expected<std::string> FetchToken(Ctx& c, const std::string& scope,
                                 const std::map<std::string, std::string>& challenge) {
  auto it = challenge.find("realm");
  if (it == challenge.end() || it->second.empty())
    return Error(Errc::kAuth, *c.registry + ": Bearer challenge without a realm");
  std::string realm = it->second;
  UrlParts rp = SplitUrl(realm);
  std::string realm_host = rp.authority;
  if (auto at = realm_host.rfind('@'); at != std::string::npos)
    realm_host = realm_host.substr(at + 1);
  bool plain_ok = !c.opts->tls_verify || IsLoopbackRegistry(realm_host) ||
                  IsLoopbackRegistry(*c.registry);
  if (rp.scheme != "https" && !(rp.scheme == "http" && plain_ok))
    return Error(Errc::kAuth, *c.registry + ": refusing token realm " + realm +
                                  " (only https, or http for a loopback registry)");
  std::optional<Credentials> creds;
  {
    std::lock_guard<std::mutex> lock(c.impl->mu);
    creds = c.impl->creds;
  }
  std::string query;
  if (auto s = challenge.find("service"); s != challenge.end())
    query += "service=" + UrlEncode(s->second);
  std::string scopes = scope;
  if (scopes.empty())
    if (auto s = challenge.find("scope"); s != challenge.end())
      scopes = s->second;
  // Several scopes are separated by spaces; each becomes its own parameter.
  size_t pos = 0;
  while (pos < scopes.size()) {
    size_t sp = scopes.find(' ', pos);
    std::string one = scopes.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
    if (!one.empty())
      query += (query.empty() ? "" : "&") + std::string("scope=") + UrlEncode(one);
    if (sp == std::string::npos)
      break;
    pos = sp + 1;
  }

  HttpRequest req;
  req.max_body = size_t(1) << 20;
  req.tls.verify = c.opts->tls_verify;
  req.idle_timeout_s = c.opts->idle_timeout_s;
  if (creds && creds->username == "<token>") {
    // OAuth2 refresh-token grant (docker login with an identity token).
    req.method = "POST";
    req.url = realm;
    req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
    req.body = "grant_type=refresh_token&client_id=kiln&refresh_token=" + UrlEncode(creds->password) +
               (query.empty() ? "" : "&" + query);
  } else {
    req.url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + query;
    if (creds && !creds->empty())
      req.headers.push_back(
          {"Authorization", "Basic " + Base64Encode(creds->username + ":" + creds->password)});
  }
  Expected<HttpResponse> resp = Error(Errc::kNetwork, "");
  for (int attempt = 1;; ++attempt) {
    resp = c.impl->transport->Send(req);
    bool transient = resp ? IsTransientStatus(resp->status)
                          : resp.error().code() == Errc::kNetwork && !IsTlsVerifyError(resp.error());
    if (!transient || attempt >= c.opts->max_attempts)
      break;
    std::this_thread::sleep_for(
        RetryDelay(attempt, c.opts->retry_base, c.opts->max_retry_after, resp ? &*resp : nullptr));
  }
  if (!resp)
    return std::move(resp).error().WithContext("get a token for " + *c.registry);
  if (resp->status == 401 || resp->status == 403)
    return Error(Errc::kAuth, "get a token from " + realm + ": " + DescribeHttpError(*resp) +
                                  (creds ? " (invalid username or password?)" : ""));
  if (resp->status != 200)
    return Error(Errc::kAuth, "get a token from " + realm + ": " + DescribeHttpError(*resp));
  auto j = nlohmann::json::parse(resp->body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kAuth, "get a token from " + realm + ": the reply is not JSON");
  std::string token;
  for (const char* key : {"token", "access_token"})
    if (j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) {
      token = j[key].get<std::string>();
      break;
    }
  if (token.empty())
    return Error(Errc::kAuth, "get a token from " + realm + ": the reply holds no token");
  int64_t expires_in = 60;
  if (j.contains("expires_in") && j["expires_in"].is_number_integer())
    expires_in = std::max<int64_t>(j["expires_in"].get<int64_t>(), 10);
  std::lock_guard<std::mutex> lock(c.impl->mu);
  c.impl->tokens[scope] = {"Bearer " + token,
                           Clock::now() + std::chrono::seconds(expires_in - 5)};
  return "Bearer " + token;
}

void LoadCredentialsOnce(Ctx& c) {
  std::lock_guard<std::mutex> lock(c.impl->mu);
  if (c.impl->creds_loaded)
    return;
  c.impl->creds_loaded = true;
  auto found = LookupCredentials(*c.registry, c.opts->authfile);
  if (!found) {
    LogWarn("credentials for " + *c.registry + ": " + found.error().message());
    return;
  }
  c.impl->creds = *found;
}

// The Authorization value to send for `scope`, or "".
std::string CachedAuth(Ctx& c, const std::string& scope) {
  std::lock_guard<std::mutex> lock(c.impl->mu);
  if (c.impl->auth_scheme == "basic" && c.impl->creds && !c.impl->creds->empty())
    return "Basic " + Base64Encode(c.impl->creds->username + ":" + c.impl->creds->password);
  if (c.impl->auth_scheme == "bearer") {
    auto it = c.impl->tokens.find(scope);
    if (it != c.impl->tokens.end() && it->second.expires > Clock::now())
      return it->second.header;
  }
  return "";
}

// Reacts to a 401: picks the challenge and obtains what it asks for.
Expected<std::string> Authenticate(Ctx& c, const HttpResponse& r, const std::string& scope,
                                   const std::string& url) {
  LoadCredentialsOnce(c);
  auto challenges = ParseWwwAuthenticate(r.Header("www-authenticate"));
  for (const auto& ch : challenges) {
    if (ch.scheme == "bearer") {
      {
        std::lock_guard<std::mutex> lock(c.impl->mu);
        c.impl->auth_scheme = "bearer";
        c.impl->bearer = ch.params;
        c.impl->tokens.erase(scope);
      }
      return FetchToken(c, scope, ch.params);
    }
  }
  for (const auto& ch : challenges) {
    if (ch.scheme == "basic") {
      std::lock_guard<std::mutex> lock(c.impl->mu);
      c.impl->auth_scheme = "basic";
      if (!c.impl->creds || c.impl->creds->empty())
        return Error(Errc::kAuth, "GET " + url + ": 401 unauthorized (no credentials for " +
                                      *c.registry + "; run kiln login " + *c.registry + ")");
      return "Basic " + Base64Encode(c.impl->creds->username + ":" + c.impl->creds->password);
    }
  }
  return Error(Errc::kAuth, url + ": 401 unauthorized with no usable WWW-Authenticate challenge");
}

// One request with auth and redirects, no retries. The Authorization header
// goes only to the registry's own origin; a redirect elsewhere drops it, and
// https never downgrades to http.
Expected<HttpResponse> SendOnce(Ctx& c, HttpRequest req, const std::string& scope) {
  std::string origin;
  {
    std::lock_guard<std::mutex> lock(c.impl->mu);
    origin = c.impl->origin;
  }
  bool reauthed = false;
  std::string auth = CachedAuth(c, scope);
  TlsConfig registry_tls = c.impl->tls;
  for (int hops = 0;; ++hops) {
    bool own = UrlOrigin(req.url) == origin;
    HttpRequest r = req;
    r.tls = own ? registry_tls : TlsConfig{.verify = c.opts->tls_verify};
    r.idle_timeout_s = c.opts->idle_timeout_s;
    if (own && !auth.empty())
      r.headers.push_back({"Authorization", auth});
    KILN_ASSIGN_OR_RETURN(HttpResponse resp, c.impl->transport->Send(r));
    if (resp.status == 401 && own && !reauthed) {
      reauthed = true;
      KILN_ASSIGN_OR_RETURN(auth, Authenticate(c, resp, scope, req.url));
      --hops;
      continue;
    }
    bool redirect = resp.status == 301 || resp.status == 302 || resp.status == 303 ||
                    resp.status == 307 || resp.status == 308;
    if (!redirect)
      return resp;
    std::string loc = resp.Header("location");
    if (loc.empty())
      return Error(Errc::kNetwork, req.method + " " + req.url + ": redirect without Location");
    if (hops >= 8)
      return Error(Errc::kNetwork, req.method + " " + req.url + ": too many redirects");
    std::string next = ResolveUrl(req.url, loc);
    UrlParts from = SplitUrl(req.url), to = SplitUrl(next);
    if (to.scheme != "https" && to.scheme != "http")
      return Error(Errc::kNetwork, req.method + " " + req.url + ": refusing redirect to " +
                                       to.scheme + " URL");
    if (from.scheme == "https" && to.scheme == "http")
      return Error(Errc::kNetwork, req.method + " " + req.url +
                                       ": refusing redirect from https to http (" + next + ")");
    if (resp.status == 303 && req.method != "HEAD") {
      req.method = "GET";
      req.body.clear();
      req.body_fd = -1;
    }
    req.url = next;
  }
}

// SendOnce with retries on transient failures (network errors, 408, 429,
// 5xx). A 2xx..4xx other than those is returned as is.
Expected<HttpResponse> Send(Ctx& c, const HttpRequest& req, const std::string& scope) {
  for (int attempt = 1;; ++attempt) {
    auto resp = SendOnce(c, req, scope);
    bool transient = resp ? IsTransientStatus(resp->status)
                          : resp.error().code() == Errc::kNetwork && !IsTlsVerifyError(resp.error());
    if (!transient || attempt >= c.opts->max_attempts)
      return resp;
    auto delay = RetryDelay(attempt, c.opts->retry_base, c.opts->max_retry_after,
                            resp ? &*resp : nullptr);
    LogInfo(req.method + " " + req.url + ": " +
            (resp ? DescribeHttpError(*resp) : resp.error().message()) + "; retrying in " +
            std::to_string(delay.count()) + " ms");
    std::this_thread::sleep_for(delay);
  }
}

Error HttpError(const HttpRequest& req, const HttpResponse& r) {
  Errc code = Errc::kFailed;
  if (r.status == 401 || r.status == 403)
    code = Errc::kAuth;
  else if (r.status == 404)
    code = Errc::kNotFound;
  else if (IsTransientStatus(r.status))
    code = Errc::kNetwork;
  return Error(code, req.method + " " + req.url + ": " + DescribeHttpError(r));
}

std::string StripParams(std::string media_type) {
  if (auto semi = media_type.find(';'); semi != std::string::npos)
    media_type = media_type.substr(0, semi);
  while (!media_type.empty() && media_type.back() == ' ')
    media_type.pop_back();
  return media_type;
}

const char* kManifestAccept =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

}  // namespace

// ------------------------------------------------------------ base URL, ping

Expected<std::string> RegistryClient::BaseUrl() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->base_url.empty())
      return impl_->base_url;
  }
  // https first; plain http only for loopback registries (docker's rule) or
  // with --tls-verify=false, and only when https cannot connect at all: a
  // server whose certificate cannot be verified is an error, never a
  // downgrade (podman: "x509: certificate signed by unknown authority").
  bool http_ok = !options_.tls_verify || IsLoopbackRegistry(registry_);
  std::vector<std::string> schemes = {"https"};
  if (http_ok)
    schemes.push_back("http");
  Error last(Errc::kNetwork, "");
  for (const auto& scheme : schemes) {
    std::string base = scheme + "://" + impl_->host;
    HttpRequest req;
    req.url = base + "/v2/";
    req.max_body = size_t(1) << 20;
    req.tls = impl_->tls;
    req.idle_timeout_s = options_.idle_timeout_s;
    req.connect_timeout_s = 15;
    Expected<HttpResponse> resp = Error(Errc::kNetwork, "");
    for (int attempt = 1;; ++attempt) {
      resp = impl_->transport->Send(req);
      bool transient = resp ? IsTransientStatus(resp->status) : false;
      if (!transient || attempt >= options_.max_attempts)
        break;
      std::this_thread::sleep_for(
          RetryDelay(attempt, options_.retry_base, options_.max_retry_after, &*resp));
    }
    if (!resp && IsTlsVerifyError(resp.error())) {
      std::string dir = options_.cert_dir.empty() ? "/etc/containers/certs.d/" + registry_ + "/ca.crt"
                                                  : options_.cert_dir + "/ca.crt";
      return Error(Errc::kNetwork, "registry " + registry_ + ": " + resp.error().message() +
                                       " (add the registry's CA certificate to " + dir +
                                       ", or use --tls-verify=false)");
    }
    if (!resp) {
      last = std::move(resp).error();
      continue;
    }
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->base_url = base;
    impl_->origin = UrlOrigin(base);
    if (resp->status == 401) {
      auto ch = ParseWwwAuthenticate(resp->Header("www-authenticate"));
      if (!ch.empty()) {
        impl_->auth_scheme = ch[0].scheme;
        if (ch[0].scheme == "bearer")
          impl_->bearer = ch[0].params;
      }
    }
    return base;
  }
  // The hint only when the host answered and plain HTTP could be why (not
  // for a name that does not resolve).
  bool unresolved = last.message().find("resolve host") != std::string::npos ||
                    last.message().find("resolve proxy") != std::string::npos;
  std::string hint = http_ok || unresolved ? "" : " (plain HTTP needs --tls-verify=false for a non-loopback registry)";
  return Error(Errc::kNetwork, "cannot reach registry " + registry_ + ": " + last.message() + hint);
}

Status RegistryClient::Ping() {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  LoadCredentialsOnce(c);
  HttpRequest req;
  req.url = base + "/v2/";
  req.max_body = size_t(1) << 20;
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, Send(c, req, ""));
  if (resp.status == 401 || resp.status == 403)
    return Error(Errc::kAuth, "login to " + registry_ + ": " + DescribeHttpError(resp) +
                                  " (invalid username or password?)");
  if (resp.status != 200)
    return HttpError(req, resp);
  return Ok();
}

// ------------------------------------------------------------ manifests

Expected<ManifestBlob> RegistryClient::GetManifest(const std::string& repo,
                                                   const std::string& ref) {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  HttpRequest req = V2Request("GET", base, repo + "/manifests/" + ref);
  req.headers.push_back({"Accept", kManifestAccept});
  req.max_body = size_t(4) << 20;
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, Send(c, req, ScopeFor(repo, false)));
  if (resp.status != 200)
    return HttpError(req, resp);
  ManifestBlob out;
  out.body = std::move(resp.body);
  out.media_type = StripParams(resp.Header("content-type"));
  auto j = nlohmann::json::parse(out.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kCorrupt, "GET " + req.url + ": the manifest is not a JSON object");
  if (j.contains("mediaType") && j["mediaType"].is_string()) {
    std::string mt = j["mediaType"].get<std::string>();
    if (out.media_type.empty() || out.media_type == "application/json" ||
        out.media_type == "text/plain" || out.media_type == "application/octet-stream")
      out.media_type = mt;
    else if (mt != out.media_type)
      return Error(Errc::kCorrupt, "GET " + req.url + ": Content-Type " + out.media_type +
                                       " disagrees with the manifest's mediaType " + mt);
  }
  if (out.media_type.empty() || out.media_type == "application/json")
    out.media_type = j.contains("manifests") ? std::string(kMediaTypeOciIndex) : std::string(kMediaTypeOciManifest);
  if (ref.find(':') != std::string::npos) {
    KILN_ASSIGN_OR_RETURN(Digest want, Digest::Parse(ref));
    if (want.algorithm() != "sha256")
      return Error(Errc::kUnsupported, "GET " + req.url + ": cannot verify a " +
                                           want.algorithm() + " manifest digest");
    out.digest = Digest::Of(out.body);
    if (out.digest != want)
      return Error(Errc::kCorrupt, "GET " + req.url + ": digest mismatch: got " +
                                       out.digest.str() + ", expected " + want.str());
  } else {
    out.digest = Digest::Of(out.body);
  }
  return out;
}

Expected<std::optional<ManifestHead>> RegistryClient::HeadManifest(const std::string& repo,
                                                                   const std::string& ref) {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  HttpRequest req = V2Request("HEAD", base, repo + "/manifests/" + ref);
  req.headers.push_back({"Accept", kManifestAccept});
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, Send(c, req, ScopeFor(repo, false)));
  if (resp.status == 404)
    return std::optional<ManifestHead>();
  if (resp.status != 200)
    return HttpError(req, resp);
  ManifestHead h;
  h.media_type = StripParams(resp.Header("content-type"));
  if (auto d = Digest::Parse(resp.Header("docker-content-digest")))
    h.digest = *d;
  std::string len = resp.Header("content-length");
  if (!len.empty() && std::all_of(len.begin(), len.end(), ::isdigit) && len.size() < 18)
    h.size = std::stoll(len);
  return std::optional<ManifestHead>(h);
}

Expected<Digest> RegistryClient::PutManifest(const std::string& repo, const std::string& ref,
                                             std::string_view media_type,
                                             const std::string& body) {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  HttpRequest req = V2Request("PUT", base, repo + "/manifests/" + ref);
  req.headers.push_back({"Content-Type", std::string(media_type)});
  req.body = body;
  req.max_body = size_t(1) << 20;
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, Send(c, req, ScopeFor(repo, true)));
  if (resp.status != 201 && resp.status != 200 && resp.status != 202)
    return HttpError(req, resp);
  return Digest::Of(body);
}

// ------------------------------------------------------------ blobs

Expected<bool> RegistryClient::BlobExists(const std::string& repo, const Digest& digest) {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  HttpRequest req = V2Request("HEAD", base, repo + "/blobs/" + digest.str());
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, Send(c, req, ScopeFor(repo, false)));
  if (resp.status == 200)
    return true;
  if (resp.status == 404)
    return false;
  return HttpError(req, resp);
}

Status RegistryClient::FetchBlob(const std::string& repo, const Digest& digest, int64_t size,
                                 int fd, const std::function<void(std::string_view, uint64_t)>& on_data) {
  if (digest.algorithm() != "sha256")
    return Error(Errc::kUnsupported, "blob " + digest.str() + ": only sha256 blobs can be verified");
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  const uint64_t limit = size >= 0 ? static_cast<uint64_t>(size) : uint64_t(1) << 36;
  Impl::Slot slot(impl_.get());

  std::string what = "copying blob " + digest.str().substr(0, 19);
  auto progress = [&](uint64_t done, bool finished) {
    if (options_.progress)
      options_.progress({what, done, size >= 0 ? static_cast<uint64_t>(size) : 0, finished});
  };
  progress(0, false);

  uint64_t offset = 0;
  Sha256 hasher;
  bool use_range = true;
  auto restart = [&]() -> Status {
    offset = 0;
    hasher = Sha256();
    if (::ftruncate(fd, 0) != 0)
      return Error::FromErrno("truncate blob download");
    return Ok();
  };
  KILN_TRY(restart());
  uint64_t next_report = 32u << 20;

  Error last(Errc::kNetwork, "");
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    HttpRequest req = V2Request("GET", base, repo + "/blobs/" + digest.str());
    req.max_body = size_t(1) << 20;
    bool asked_range = use_range && offset > 0;
    if (asked_range)
      req.headers.push_back({"Range", "bytes=" + std::to_string(offset) + "-"});
    req.on_headers = [&](const HttpResponse& r) -> Status {
      if (r.status == 206 && asked_range) {
        // Resume only when the server starts where we stopped (I12).
        std::string cr = r.Header("content-range");
        std::string want = "bytes " + std::to_string(offset) + "-";
        if (cr.rfind(want, 0) == 0)
          return Ok();
        use_range = false;
        return Error(Errc::kNetwork, "GET " + req.url + ": Content-Range \"" + cr +
                                         "\" does not start at " + std::to_string(offset));
      }
      if (r.status == 200)
        return offset == 0 ? Ok() : restart();
      return Error(Errc::kNetwork, "GET " + req.url + ": unexpected status " +
                                       std::to_string(r.status));
    };
    req.sink = [&](std::string_view data) -> Status {
      if (offset + data.size() > limit)
        return Error(Errc::kCorrupt, "GET " + req.url + ": size mismatch: the registry sent more than " +
                                         std::to_string(limit) + " bytes");
      const char* p = data.data();
      size_t left = data.size();
      while (left > 0) {
        ssize_t n = ::pwrite(fd, p, left, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0)
          return Error::FromErrno("write blob " + digest.str());
        hasher.Update(p, static_cast<size_t>(n));
        if (on_data)
          on_data(std::string_view(p, static_cast<size_t>(n)), offset);
        p += n;
        left -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
      }
      if (offset >= next_report) {
        next_report = offset + (32u << 20);
        progress(offset, false);
      }
      return Ok();
    };
    auto resp = SendOnce(c, req, ScopeFor(repo, false));
    if (resp && resp->status >= 200 && resp->status < 300) {
      if (size >= 0 && offset < limit) {
        last = Error(Errc::kNetwork, "GET " + req.url + ": truncated body (" +
                                         std::to_string(offset) + " of " + std::to_string(size) +
                                         " bytes)");
      } else {
        Digest got = hasher.Finish();
        if (got == digest && (size < 0 || offset == limit)) {
          progress(offset, true);
          return Ok();
        }
        // Corruption in transit or a lying server: start over from zero, and
        // fail for good when it persists.
        last = Error(Errc::kCorrupt, "GET " + req.url + ": digest mismatch: got " + got.str() +
                                         " (" + std::to_string(offset) + " bytes)");
        KILN_TRY(restart());
      }
    } else if (resp) {
      if (!IsTransientStatus(resp->status))
        return HttpError(req, *resp);
      last = HttpError(req, *resp);
    } else {
      Errc code = resp.error().code();
      if (code != Errc::kNetwork)
        return std::move(resp).error();
      last = std::move(resp).error();
    }
    if (attempt < options_.max_attempts) {
      auto delay = RetryDelay(attempt, options_.retry_base, options_.max_retry_after,
                              resp ? &*resp : nullptr);
      LogInfo(last.message() + "; retrying in " + std::to_string(delay.count()) + " ms" +
              (offset > 0 ? " from byte " + std::to_string(offset) : ""));
      std::this_thread::sleep_for(delay);
    }
  }
  return std::move(last).WithContext("fetch blob " + digest.str() + " after " +
                                     std::to_string(options_.max_attempts) + " attempts");
}

Expected<std::string> RegistryClient::FetchBlobBytes(const std::string& repo, const Digest& digest,
                                                     int64_t size) {
  constexpr int64_t kMax = int64_t(4) << 20;
  if (size > kMax)
    return Error(Errc::kCorrupt, "blob " + digest.str() + " is larger than 4 MiB");
  auto tmp = TempDir::Create("kiln-blob-");
  if (!tmp)
    return std::move(tmp).error();
  std::string path = JoinPath(tmp->path(), "blob");
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT | O_EXCL, 0600));
  KILN_TRY(FetchBlob(repo, digest, size < 0 ? kMax : size, fd.get()));
  if (size < 0) {
    // Unknown size: FetchBlob checked the digest; the cap bounded the read.
  }
  return ReadFile(path, static_cast<size_t>(kMax));
}

Expected<RegistryClient::UploadResult> RegistryClient::UploadBlob(
    const std::string& repo, const Digest& digest, int64_t size, int fd,
    const std::string& mount_from, uint64_t chunk_size) {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  std::string scope = ScopeFor(repo, true);
  if (!mount_from.empty() && mount_from != repo)
    scope += " " + ScopeFor(mount_from, false);
  UploadResult result;
  KILN_ASSIGN_OR_RETURN(bool exists, BlobExists(repo, digest));
  if (exists) {
    result.existed = true;
    return result;
  }
  Impl::Slot slot(impl_.get());
  std::string what = "copying blob " + digest.str().substr(0, 19);
  if (options_.progress)
    options_.progress({what, 0, static_cast<uint64_t>(size), false});

  // The whole session is retried from POST when a step fails transiently or
  // the session disappears (404 on PATCH/PUT): every step is idempotent.
  Error last(Errc::kNetwork, "");
  for (int session = 1; session <= 3; ++session) {
    HttpRequest post;
    post.method = "POST";
    post.url = base + "/v2/" + repo + "/blobs/uploads/";
    if (!mount_from.empty() && mount_from != repo)
      post.url += "?mount=" + digest.str() + "&from=" + mount_from;
    post.max_body = size_t(1) << 20;
    KILN_ASSIGN_OR_RETURN(HttpResponse pr, Send(c, post, scope));
    if (pr.status == 201 && !mount_from.empty()) {
      result.mounted = true;
      break;
    }
    if (pr.status != 202)
      return HttpError(post, pr);
    std::string location = pr.Header("location");
    if (location.empty())
      return Error(Errc::kFailed, "POST " + post.url + ": 202 without a Location");
    location = ResolveUrl(post.url, location);

    bool restart = false;
    uint64_t sent = 0;
    if (chunk_size > 0) {
      while (sent < static_cast<uint64_t>(size) && !restart) {
        uint64_t n = std::min<uint64_t>(chunk_size, static_cast<uint64_t>(size) - sent);
        HttpRequest patch;
        patch.method = "PATCH";
        patch.url = location;
        patch.headers.push_back({"Content-Type", "application/octet-stream"});
        patch.headers.push_back({"Content-Range", std::to_string(sent) + "-" +
                                                      std::to_string(sent + n - 1)});
        patch.body_fd = fd;
        patch.body_offset = sent;
        patch.body_length = n;
        patch.max_body = size_t(1) << 20;
        auto resp = SendOnce(c, patch, scope);
        if (!resp || resp->status == 404 || resp->status == 416 || IsTransientStatus(resp->status)) {
          last = resp ? HttpError(patch, *resp) : std::move(resp).error();
          if (!resp && last.code() != Errc::kNetwork)
            return last;
          restart = true;
          break;
        }
        if (resp->status != 202)
          return HttpError(patch, *resp);
        // Range: 0-<last byte received>; continue from there (I12).
        std::string range = resp->Header("range");
        uint64_t got = sent + n;
        if (auto dash = range.find('-'); dash != std::string::npos) {
          std::string end = range.substr(dash + 1);
          if (!end.empty() && std::all_of(end.begin(), end.end(), ::isdigit))
            got = std::stoull(end) + 1;
        }
        if (got > sent + n || got == 0) {
          last = Error(Errc::kFailed, "PATCH " + location + ": bad Range \"" + range + "\"");
          restart = true;
          break;
        }
        sent = got;
        if (std::string loc = resp->Header("location"); !loc.empty())
          location = ResolveUrl(location, loc);
        if (options_.progress)
          options_.progress({what, sent, static_cast<uint64_t>(size), false});
      }
      if (restart) {
        std::this_thread::sleep_for(RetryDelay(session, options_.retry_base, options_.max_retry_after, nullptr));
        continue;
      }
    }
    HttpRequest put;
    put.method = "PUT";
    put.url = location + (location.find('?') == std::string::npos ? "?" : "&") +
              "digest=" + digest.str();
    put.headers.push_back({"Content-Type", "application/octet-stream"});
    put.max_body = size_t(1) << 20;
    if (chunk_size == 0) {
      put.body_fd = fd;
      put.body_offset = 0;
      put.body_length = static_cast<uint64_t>(size);
    }
    auto resp = Send(c, put, scope);
    if (!resp) {
      if (resp.error().code() != Errc::kNetwork)
        return std::move(resp).error();
      last = std::move(resp).error();
      continue;
    }
    if (resp->status == 404 || IsTransientStatus(resp->status)) {
      last = HttpError(put, *resp);
      std::this_thread::sleep_for(RetryDelay(session, options_.retry_base, options_.max_retry_after, &*resp));
      continue;
    }
    if (resp->status != 201 && resp->status != 200 && resp->status != 204)
      return HttpError(put, *resp);
    last = Error(Errc::kNetwork, "");
    break;
  }
  if (!last.message().empty())
    return std::move(last).WithContext("upload blob " + digest.str());
  // Confirm before anything refers to it (H33: PUT 201 then HEAD 404).
  KILN_ASSIGN_OR_RETURN(bool there, BlobExists(repo, digest));
  if (!there)
    return Error(Errc::kFailed, "upload blob " + digest.str() + " to " + registry_ + "/" + repo +
                                    ": the registry accepted it but does not have it");
  if (options_.progress)
    options_.progress({what, static_cast<uint64_t>(size), static_cast<uint64_t>(size), true});
  return result;
}

// ------------------------------------------------------------ tags, referrers

Expected<std::vector<std::string>> RegistryClient::ListTags(const std::string& repo) {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  std::vector<std::string> tags;
  std::string url = base + "/v2/" + repo + "/tags/list";
  for (int page = 0; !url.empty(); ++page) {
    if (page > 10000)
      return Error(Errc::kCorrupt, "GET " + url + ": too many pages of tags");
    HttpRequest req;
    req.url = url;
    req.max_body = size_t(4) << 20;
    KILN_ASSIGN_OR_RETURN(HttpResponse resp, Send(c, req, ScopeFor(repo, false)));
    if (resp.status != 200)
      return HttpError(req, resp);
    auto j = nlohmann::json::parse(resp.body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return Error(Errc::kCorrupt, "GET " + url + ": the tag list is not JSON");
    if (j.contains("tags") && j["tags"].is_array())
      for (const auto& t : j["tags"])
        if (t.is_string())
          tags.push_back(t.get<std::string>());
    url = NextLink(resp.Header("link"), url);
  }
  return tags;
}

Expected<std::string> RegistryClient::Referrers(const std::string& repo, const Digest& digest) {
  KILN_ASSIGN_OR_RETURN(std::string base, BaseUrl());
  Ctx c{impl_.get(), &options_, &registry_};
  HttpRequest req = V2Request("GET", base, repo + "/referrers/" + digest.str());
  req.headers.push_back({"Accept", std::string(kMediaTypeOciIndex)});
  req.max_body = size_t(4) << 20;
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, Send(c, req, ScopeFor(repo, false)));
  if (resp.status == 404 || resp.status == 405)
    return Error(Errc::kUnsupported, registry_ + " does not offer the referrers API");
  if (resp.status != 200)
    return HttpError(req, resp);
  return std::move(resp.body);
}

}  // namespace kiln::registry
