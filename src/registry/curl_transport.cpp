// HttpTransport on libcurl easy handles. Handles are pooled so that
// keep-alive connections and TLS sessions are reused across requests; a
// handle is used by one thread at a time.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <curl/curl.h>

#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/registry.h"
#include "registry/internal.h"

namespace kiln::registry {

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name.size() != name.size())
      continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(h.name[i])) ==
             std::tolower(static_cast<unsigned char>(name[i]));
    if (same)
      return h.value;
  }
  return "";
}

namespace {

// libcurl is loaded with dlopen() on the first registry request instead of
// being linked: with its dependencies (gnutls, krb5, ldap, ssh2, ...) it
// costs ~12 ms at every process start here, paid twice by every command that
// re-executes into the user namespace, and most commands (a cached build,
// `kiln run` of a local image) never talk to a registry.
struct CurlApi {
  std::string error;  // why loading failed; empty when loaded
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
};

const CurlApi& Curl() {
  static const CurlApi api = [] {
    CurlApi a;
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = ::dlerror();
      a.error = std::string("registry access needs libcurl (Debian package libcurl4): ") + (why ? why : "dlopen failed");
      return a;
    }
    bool ok = true;
    auto load = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      if (!fn && ok) {
        ok = false;
        a.error = std::string("libcurl.so.4 lacks ") + name;
      }
    };
    load(a.global_init, "curl_global_init");
    load(a.easy_init, "curl_easy_init");
    load(a.easy_cleanup, "curl_easy_cleanup");
    load(a.easy_reset, "curl_easy_reset");
    load(a.easy_perform, "curl_easy_perform");
    load(a.easy_getinfo, "curl_easy_getinfo");
    load(a.easy_strerror, "curl_easy_strerror");
    load(a.easy_setopt, "curl_easy_setopt");
    load(a.slist_append, "curl_slist_append");
    load(a.slist_free_all, "curl_slist_free_all");
    if (ok)
      a.global_init(CURL_GLOBAL_DEFAULT);
    return a;
  }();
  return api;
}

struct CurlHandleDeleter {
  void operator()(CURL* c) const { Curl().easy_cleanup(c); }
};
struct CurlListDeleter {
  void operator()(curl_slist* l) const { Curl().slist_free_all(l); }
};
using CurlHandle = std::unique_ptr<CURL, CurlHandleDeleter>;
using CurlList = std::unique_ptr<curl_slist, CurlListDeleter>;

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return std::string(s);
}

// Where the system CA bundle lives on Debian; with extra CAs we hand curl the
// concatenation so that the extras add to the system trust instead of
// replacing it.
const std::string& SystemCaBundle() {
  static const std::string bundle = [] {
    for (const char* p : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
      auto data = ReadFile(p, size_t(16) << 20);
      if (data)
        return *data;
    }
    return std::string();
  }();
  return bundle;
}

struct Transfer {
  const HttpRequest* request = nullptr;
  HttpResponse response;
  std::optional<Error> sink_error;
  bool too_big = false;
  // Upload state.
  uint64_t sent = 0;
  bool read_failed = false;
};

size_t OnHeader(char* data, size_t size, size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * nitems;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after 100 Continue, or a proxy's CONNECT reply).
    t->response.headers.clear();
    auto sp = line.find(' ');
    if (sp != std::string_view::npos)
      t->response.status = std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
    return n;
  }
  if (line == "\r\n" || line == "\n") {
    int status = t->response.status;
    if (t->request->on_headers && status >= 200 && status < 300) {
      Status s = t->request->on_headers(t->response);
      if (!s) {
        t->sink_error = std::move(s).error();
        return 0;  // aborts the transfer
      }
    }
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos)
    return n;
  std::string name = Trim(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  t->response.headers.push_back({std::move(name), Trim(line.substr(colon + 1))});
  return n;
}

size_t OnWrite(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * nmemb;
  int status = t->response.status;
  if (t->request->sink && status >= 200 && status < 300) {
    Status s = t->request->sink(std::string_view(data, n));
    if (!s) {
      t->sink_error = std::move(s).error();
      return 0;  // aborts with CURLE_WRITE_ERROR
    }
    return n;
  }
  if (t->response.body.size() + n > t->request->max_body) {
    t->too_big = true;
    return 0;
  }
  t->response.body.append(data, n);
  return n;
}

size_t OnRead(char* buffer, size_t size, size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequest& r = *t->request;
  size_t want = size * nitems;
  if (r.body_fd < 0) {
    size_t left = r.body.size() - t->sent;
    size_t n = std::min(left, want);
    std::memcpy(buffer, r.body.data() + t->sent, n);
    t->sent += n;
    return n;
  }
  uint64_t left = r.body_length - t->sent;
  size_t n = static_cast<size_t>(std::min<uint64_t>(left, want));
  if (n == 0)
    return 0;
  ssize_t got;
  do {
    got = ::pread(r.body_fd, buffer, n, static_cast<off_t>(r.body_offset + t->sent));
  } while (got < 0 && errno == EINTR);
  if (got <= 0) {
    t->read_failed = true;
    return CURL_READFUNC_ABORT;
  }
  t->sent += static_cast<uint64_t>(got);
  return static_cast<size_t>(got);
}

// Lets a retried upload start again from the beginning (curl rewinds after
// a 401 or on a reused connection that was closed under it).
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0)
    return CURL_SEEKFUNC_CANTSEEK;
  t->sent = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// Called by curl about once a second even on a stalled connection: a
// cancelled command (kiln/cancel.h) aborts its transfers here.
int OnProgress(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) { return Cancelled() ? 1 : 0; }

class CurlTransport final : public HttpTransport {
 public:
  CurlTransport() { (void)Curl(); }  // load (and curl_global_init) once, now

  Expected<HttpResponse> Send(const HttpRequest& request) override {
    if (!Curl().error.empty())
      return Error(Errc::kUnsupported, Curl().error);
    KILN_TRY(CheckCancelled());
    CurlHandle handle = Acquire();
    if (!handle)
      return Error(Errc::kNetwork, "cannot create a curl handle");
    auto result = Perform(handle.get(), request);
    Release(std::move(handle));
    return result;
  }

 private:
  CurlHandle Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!pool_.empty()) {
        CurlHandle h = std::move(pool_.back());
        pool_.pop_back();
        Curl().easy_reset(h.get());
        return h;
      }
    }
    return CurlHandle(Curl().easy_init());
  }

  void Release(CurlHandle h) {
    std::lock_guard<std::mutex> lock(mu_);
    if (pool_.size() < 16)
      pool_.push_back(std::move(h));
  }

  Expected<HttpResponse> Perform(CURL* c, const HttpRequest& r) {
    Transfer t;
    t.request = &r;
    char errbuf[CURL_ERROR_SIZE] = {0};

    Curl().easy_setopt(c, CURLOPT_URL, r.url.c_str());
    Curl().easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    Curl().easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    Curl().easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    Curl().easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    Curl().easy_setopt(c, CURLOPT_USERAGENT, "kiln/" "0.1");
    Curl().easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(r.connect_timeout_s));
    Curl().easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    Curl().easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(r.idle_timeout_s));
    Curl().easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
    Curl().easy_setopt(c, CURLOPT_HEADERDATA, &t);
    Curl().easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnWrite);
    Curl().easy_setopt(c, CURLOPT_WRITEDATA, &t);
    Curl().easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    Curl().easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    // 512 KiB reads (curl's maximum) instead of 16 KiB: a 240 MB blob took
    // ~15,000 recv+poll+write rounds, now ~500.
    Curl().easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
    Curl().easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    // Proxies from the environment are honoured by libcurl itself; never
    // send our Authorization to a proxy.
    Curl().easy_setopt(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);

    if (!r.tls.verify) {
      Curl().easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      Curl().easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    std::string ca;
    if (!r.tls.ca_pem.empty()) {
      ca = SystemCaBundle() + "\n" + r.tls.ca_pem;
      curl_blob blob{ca.data(), ca.size(), CURL_BLOB_COPY};
      Curl().easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (!r.tls.client_cert.empty()) {
      Curl().easy_setopt(c, CURLOPT_SSLCERT, r.tls.client_cert.c_str());
      Curl().easy_setopt(c, CURLOPT_SSLKEY, r.tls.client_key.c_str());
    }

    curl_slist* raw = nullptr;
    for (const auto& h : r.headers)
      raw = Curl().slist_append(raw, (h.name + ": " + h.value).c_str());
    raw = Curl().slist_append(raw, "Expect:");  // no 100-continue round trip
    CurlList headers(raw);
    Curl().easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

    if (r.method == "GET") {
      Curl().easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (r.method == "HEAD") {
      Curl().easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
      uint64_t len = r.body_fd >= 0 ? r.body_length : r.body.size();
      Curl().easy_setopt(c, CURLOPT_UPLOAD, 1L);
      Curl().easy_setopt(c, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      Curl().easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(len));
      Curl().easy_setopt(c, CURLOPT_READFUNCTION, &OnRead);
      Curl().easy_setopt(c, CURLOPT_READDATA, &t);
      Curl().easy_setopt(c, CURLOPT_SEEKFUNCTION, &OnSeek);
      Curl().easy_setopt(c, CURLOPT_SEEKDATA, &t);
    }

    CURLcode rc = Curl().easy_perform(c);
    if (t.sink_error)
      return std::move(*t.sink_error);
    if (t.too_big)
      return Error(Errc::kCorrupt, r.method + " " + r.url + ": response body larger than " +
                                       std::to_string(r.max_body) + " bytes");
    if (t.read_failed)
      return Error(Errc::kIo, r.method + " " + r.url + ": cannot read the upload source");
    if (rc != CURLE_OK) {
      std::string why = errbuf[0] ? errbuf : Curl().easy_strerror(rc);
      // "Failed to connect" -> "failed to connect", but "SSL ..." stays.
      if (!why.empty() && !(why.size() > 1 && std::isupper(static_cast<unsigned char>(why[1]))))
        why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
      // The server answered the handshake but its certificate (or ours) was
      // refused: say so, so that the client neither retries nor falls back
      // to plain HTTP. A plain-HTTP server gives CURLE_SSL_CONNECT_ERROR
      // "wrong version number", which stays an ordinary connect failure.
      bool cert_problem =
          rc == CURLE_PEER_FAILED_VERIFICATION ||
          (rc == CURLE_SSL_CONNECT_ERROR && why.find("certificate") != std::string::npos);
      if (cert_problem)
        return Error(Errc::kNetwork, r.method + " " + r.url + ": " + std::string(kTlsVerifyFailed) +
                                         ": " + why);
      return Error(Errc::kNetwork, r.method + " " + r.url + ": " + why);
    }
    long code = 0;
    Curl().easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    t.response.status = static_cast<int>(code);
    return std::move(t.response);
  }

  std::mutex mu_;
  std::vector<CurlHandle> pool_;
};

}  // namespace

std::unique_ptr<HttpTransport> MakeCurlTransport() { return std::make_unique<CurlTransport>(); }

}  // namespace kiln::registry
