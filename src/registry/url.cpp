// URL helpers of the registry client (src/registry/client.cpp): splitting,
// origins, redirects and Link headers, the loopback rule for plain HTTP,
// error descriptions, retry delays and certs.d directories.
#include <algorithm>
#include <cctype>
#include <map>

#include <nlohmann/json.hpp>

#include "kiln/fs.h"
#include "kiln/registry.h"
#include "registry/internal.h"

namespace kiln::registry {

// ------------------------------------------------------------ URL helpers

UrlParts SplitUrl(const std::string& url) {
  UrlParts p;
  auto colon = url.find("://");
  if (colon == std::string::npos) {
    p.path = url;
    return p;
  }
  p.scheme = url.substr(0, colon);
  for (auto& ch : p.scheme)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  size_t start = colon + 3;
  size_t slash = url.find_first_of("/?#", start);
  p.authority = url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
  p.path = slash == std::string::npos ? "/" : url.substr(slash);
  return p;
}

namespace {

std::string Lower(std::string s) {
  for (auto& ch : s)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

std::string UrlOrigin(const std::string& url) {
  UrlParts p = SplitUrl(url);
  std::string auth = Lower(p.authority);
  if (auto at = auth.rfind('@'); at != std::string::npos)
    auth = auth.substr(at + 1);
  bool has_port = false;
  if (!auth.empty() && auth.front() == '[')
    has_port = auth.find("]:") != std::string::npos;
  else
    has_port = auth.find(':') != std::string::npos;
  if (!has_port)
    auth += p.scheme == "http" ? ":80" : ":443";
  return p.scheme + "://" + auth;
}

std::string ResolveUrl(const std::string& base, const std::string& location) {
  if (location.find("://") != std::string::npos)
    return location;
  UrlParts b = SplitUrl(base);
  if (location.rfind("//", 0) == 0)
    return b.scheme + ":" + location;
  if (!location.empty() && location[0] == '/')
    return b.scheme + "://" + b.authority + location;
  std::string dir = b.path.substr(0, b.path.find_first_of("?#"));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return b.scheme + "://" + b.authority + dir + location;
}

bool IsLoopbackRegistry(std::string_view host_port) {
  std::string host(host_port);
  if (!host.empty() && host[0] == '[') {
    auto end = host.find(']');
    host = host.substr(1, end == std::string::npos ? std::string::npos : end - 1);
    return host == "::1";
  }
  if (host == "::1")
    return true;
  if (auto colon = host.find(':'); colon != std::string::npos)
    host = host.substr(0, colon);
  host = Lower(host);
  if (host == "localhost")
    return true;
  // 127.0.0.0/8, dotted quad only.
  if (host.rfind("127.", 0) != 0)
    return false;
  int dots = 0;
  for (char ch : host) {
    if (ch == '.')
      ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(ch)))
      return false;
  }
  return dots == 3;
}

std::string NextLink(const std::string& link, const std::string& base) {
  // <url>; rel="next", possibly among several comma-separated links.
  size_t pos = 0;
  while (pos < link.size()) {
    auto lt = link.find('<', pos);
    if (lt == std::string::npos)
      return "";
    auto gt = link.find('>', lt);
    if (gt == std::string::npos)
      return "";
    auto end = link.find(',', gt);
    std::string params = Lower(link.substr(gt + 1, end == std::string::npos ? std::string::npos
                                                                              : end - gt - 1));
    if (params.find("rel=\"next\"") != std::string::npos ||
        params.find("rel=next") != std::string::npos)
      return ResolveUrl(base, link.substr(lt + 1, gt - lt - 1));
    if (end == std::string::npos)
      return "";
    pos = end + 1;
  }
  return "";
}

std::string DescribeHttpError(const HttpResponse& r) {
  static const std::map<int, std::string> kReasons = {
      {400, "bad request"},       {401, "unauthorized"},       {403, "forbidden"},
      {404, "not found"},         {405, "method not allowed"}, {408, "request timeout"},
      {409, "conflict"},          {413, "payload too large"},  {416, "range not satisfiable"},
      {429, "too many requests"}, {500, "internal server error"}, {502, "bad gateway"},
      {503, "service unavailable"}, {504, "gateway timeout"}};
  std::string out = std::to_string(r.status);
  if (auto it = kReasons.find(r.status); it != kReasons.end())
    out += " " + it->second;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    std::string detail;
    for (const auto& e : j["errors"]) {
      if (!e.is_object())
        continue;
      std::string code = e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
      std::string msg =
          e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
      if (msg.size() > 200)
        msg = msg.substr(0, 200) + "...";
      if (!detail.empty())
        detail += "; ";
      detail += code.empty() ? msg : code + (msg.empty() ? "" : ": " + msg);
    }
    if (!detail.empty())
      out += " (" + detail + ")";
  }
  return out;
}

bool IsTlsVerifyError(const Error& error) {
  return error.code() == Errc::kNetwork &&
         error.message().find(kTlsVerifyFailed) != std::string::npos;
}

bool IsTransientStatus(int status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

std::chrono::milliseconds RetryDelay(int attempt, std::chrono::milliseconds base,
                                     std::chrono::seconds max_retry_after,
                                     const HttpResponse* response) {
  if (response) {
    std::string ra = response->Header("retry-after");
    if (!ra.empty() && std::all_of(ra.begin(), ra.end(),
                                   [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); })) {
      long long secs = ra.size() > 6 ? 999999 : std::stoll(ra);
      return std::chrono::milliseconds(std::min<long long>(secs, max_retry_after.count()) * 1000);
    }
  }
  long long ms = base.count();
  for (int i = 1; i < attempt && ms < 30000; ++i)
    ms *= 2;
  return std::chrono::milliseconds(std::min<long long>(ms, 30000));
}

Status LoadCertDir(const std::string& dir, TlsConfig* tls) {
  auto listed = ListDirSorted(dir);
  if (!listed)
    return Ok();
  const std::vector<std::string>& names = *listed;
  auto ends_with = [](const std::string& s, std::string_view suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  for (const auto& name : names) {
    std::string path = JoinPath(dir, name);
    if (ends_with(name, ".crt")) {
      auto pem = ReadFile(path, size_t(1) << 20);
      if (!pem)
        return std::move(pem).error().WithContext("read CA certificate");
      tls->ca_pem += *pem;
      tls->ca_pem += "\n";
    } else if (ends_with(name, ".cert")) {
      std::string key = JoinPath(dir, name.substr(0, name.size() - 5) + ".key");
      if (!PathExists(key))
        return Error(Errc::kInvalidInput, "client certificate " + path + " has no key " + key);
      tls->client_cert = path;
      tls->client_key = key;
    }
  }
  return Ok();
}

}  // namespace kiln::registry
