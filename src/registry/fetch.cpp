// FetchUrl: one file over HTTP(S) for `ADD URL` and `kiln import URL`,
// through the registry client's HTTP stack (libcurl: TLS with certs.d or
// --cert-dir, proxies from the environment), with its retry rules and
// redirect policy (docs/security.md I12: never HTTPS -> HTTP; no
// credentials are ever sent).
#include <unistd.h>

#include <thread>

#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/registry.h"
#include "registry/internal.h"

namespace kiln::registry {

Expected<UrlFetch> FetchUrl(const std::string& url, const std::vector<HttpHeader>& headers, int fd,
                            const ClientOptions& options) {
  std::unique_ptr<HttpTransport> owned;
  HttpTransport* transport = options.transport;
  if (!transport) {
    owned = MakeCurlTransport();
    transport = owned.get();
  }
  std::string current = url;
  for (int hop = 0;; ++hop) {
    UrlParts parts = SplitUrl(current);
    if (parts.scheme != "http" && parts.scheme != "https")
      return Error(Errc::kInvalidInput, current + ": only http:// and https:// URLs can be fetched");
    if (parts.authority.empty() || parts.authority.find('@') != std::string::npos)
      return Error(Errc::kInvalidInput, "URL " + current + ": no host, or credentials in it (not sent)");
    HttpRequest req;
    req.url = current;
    req.headers = headers;
    req.tls.verify = options.tls_verify;
    if (!options.cert_dir.empty()) {
      if (!PathExists(options.cert_dir))
        return Error(Errc::kInvalidInput, "--cert-dir " + options.cert_dir + " does not exist");
      KILN_TRY(LoadCertDir(options.cert_dir, &req.tls));
    } else {
      KILN_TRY(LoadCertDir("/etc/containers/certs.d/" + parts.authority, &req.tls));
      KILN_TRY(LoadCertDir("/etc/docker/certs.d/" + parts.authority, &req.tls));
    }
    req.idle_timeout_s = options.idle_timeout_s;
    int64_t written = 0;
    req.on_headers = [&](const HttpResponse&) -> Status {
      written = 0;  // a new attempt starts the file again
      if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0)
        return Error::FromErrno("truncate the download");
      return Ok();
    };
    req.sink = [&](std::string_view data) -> Status {
      KILN_TRY(CheckCancelled());
      KILN_TRY(WriteAll(fd, data));
      written += static_cast<int64_t>(data.size());
      return Ok();
    };
    Expected<HttpResponse> resp = Error(Errc::kNetwork, "");
    for (int attempt = 1;; ++attempt) {
      resp = transport->Send(req);
      bool transient = resp ? IsTransientStatus(resp->status)
                            : resp.error().code() == Errc::kNetwork && !IsTlsVerifyError(resp.error());
      if (!transient || attempt >= options.max_attempts)
        break;
      std::this_thread::sleep_for(
          RetryDelay(attempt, options.retry_base, options.max_retry_after, resp ? &*resp : nullptr));
    }
    if (!resp)
      return std::move(resp).error().WithContext("GET " + current);
    int status = resp->status;
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
      std::string location = resp->Header("location");
      if (location.empty())
        return Error(Errc::kNetwork, "GET " + current + ": redirect without a Location");
      if (hop >= 10)
        return Error(Errc::kNetwork, "GET " + url + ": more than 10 redirects");
      std::string next = ResolveUrl(current, location);
      if (parts.scheme == "https" && SplitUrl(next).scheme != "https")
        return Error(Errc::kNetwork, "GET " + current + ": redirect to " + next + " refused (HTTPS to plain HTTP)");
      current = next;
      continue;
    }
    UrlFetch out;
    out.url = current;
    out.status = status;
    out.etag = resp->Header("etag");
    out.last_modified = resp->Header("last-modified");
    out.content_disposition = resp->Header("content-disposition");
    if (status == 304) {
      out.not_modified = true;
      return out;
    }
    if (status < 200 || status > 299)
      return Error(status == 404 ? Errc::kNotFound : Errc::kNetwork, "GET " + current + ": " + DescribeHttpError(*resp));
    out.size = written;
    return out;
  }
}

}  // namespace kiln::registry
