// Helpers shared inside src/registry (and its unit tests); not a public API.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/registry.h"

namespace kiln::registry {

std::string Base64Encode(std::string_view in);
std::optional<std::string> Base64Decode(std::string_view in);

/// A URL's scheme (lower case), authority and path (with the query).
struct UrlParts {
  std::string scheme;     // "https"
  std::string authority;  // "host:port" as written
  std::string path;       // "/v2/..." with query
};
UrlParts SplitUrl(const std::string& url);

/// The URL of a Link: <url>; rel="next" header, resolved against `base`, or "".
std::string NextLink(const std::string& link_header, const std::string& base);

/// "404 not found (MANIFEST_UNKNOWN: manifest unknown)" from a registry
/// error response; the body text is bounded and never includes headers.
std::string DescribeHttpError(const HttpResponse& response);

/// Delay before attempt `attempt` (1-based retry count): Retry-After when the
/// response has one (capped), else base * 2^(attempt-1) capped at 30 s.
std::chrono::milliseconds RetryDelay(int attempt, std::chrono::milliseconds base,
                                     std::chrono::seconds max_retry_after,
                                     const HttpResponse* response);

/// True for statuses worth retrying: 408, 429, 500, 502, 503, 504.
bool IsTransientStatus(int status);

/// Reads CA certificates (*.crt) and a client pair (*.cert + *.key) from a
/// certs.d directory into `tls`. A missing directory is fine.
Status LoadCertDir(const std::string& dir, TlsConfig* tls);

/// How a transport words a TLS handshake that reached the server but could
/// not be verified (unknown CA, self-signed, wrong host name, expired, a
/// refused client certificate): "<METHOD> <URL>: <kTlsVerifyFailed>: <why>".
/// Such an error is never retried and never a reason to fall back to plain
/// HTTP (podman: "x509: certificate signed by unknown authority").
inline constexpr std::string_view kTlsVerifyFailed = "TLS certificate verification failed";

/// True for an error worded with kTlsVerifyFailed.
bool IsTlsVerifyError(const Error& error);

}  // namespace kiln::registry
