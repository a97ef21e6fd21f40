// Registry client: the OCI distribution-spec over HTTP(S), with auth, TLS
// per host, retries and verified blob transfers. HttpTransport is the one
// seam tests fake; everything above it (redirects, auth, retries, digest
// checks) is real code in both the tests and the product.
//
// See docs/registry.md for the user-facing behaviour (auth files, certs.d,
// insecure registries, retries).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/reference.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::registry {

// ---------------------------------------------------------------- transport

/// TLS settings for one request. An empty ca_pem means the system bundle
/// only; a non-empty one is used in addition to it.
struct TlsConfig {
  bool verify = true;
  std::string ca_pem;       // extra CA certificates (PEM), from --cert-dir / certs.d
  std::string client_cert;  // path to a PEM client certificate, or ""
  std::string client_key;   // path to its key, or ""
};

struct HttpHeader {
  std::string name;  // lower case in responses
  std::string value;
};

struct HttpResponse;

/// One HTTP request. The body is either `body` or, when body_fd >= 0,
/// body_length bytes read with pread(2) from body_fd at body_offset (so a
/// retry can send it again).
struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<HttpHeader> headers;
  std::string body;
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  /// When set, the body of a 2xx response is handed here piece by piece
  /// instead of being buffered; an error returned aborts the transfer and
  /// becomes Send()'s error. Non-2xx bodies are always buffered.
  std::function<Status(std::string_view)> sink;
  /// With a sink: called once the headers of a 2xx response are in, before
  /// its first body byte; an error aborts the transfer.
  std::function<Status(const HttpResponse&)> on_headers;
  /// Cap on a buffered body (docs/security.md I5); more is a kCorrupt error.
  size_t max_body = size_t(4) << 20;
  TlsConfig tls;
  int connect_timeout_s = 30;
  /// The transfer fails when fewer than 1 byte/s flows for this long
  /// (slow-loris and stalled servers).
  int idle_timeout_s = 60;
};

struct HttpResponse {
  int status = 0;
  std::vector<HttpHeader> headers;
  std::string body;  // empty when streamed to HttpRequest::sink

  /// First header of that name (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

/// Sends HTTP requests. Implementations never follow redirects (the client
/// does, so that Authorization never crosses origins) and never retry.
/// Errors: kNetwork for connection, TLS and timeout failures; a sink's error
/// as returned. Thread-safe.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual Expected<HttpResponse> Send(const HttpRequest& request) = 0;
};

/// The libcurl transport; reuses connections across calls.
std::unique_ptr<HttpTransport> MakeCurlTransport();

// ---------------------------------------------------------------- auth

struct Credentials {
  std::string username;
  std::string password;       // or an identity token when username is "<token>"
  bool empty() const { return username.empty() && password.empty(); }
};

/// One challenge of a WWW-Authenticate header: scheme (lower case) and its
/// parameters (keys lower case, values unquoted).
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};

/// Parses a WWW-Authenticate header value (RFC 7235), possibly holding
/// several challenges. Unparseable text yields the challenges read so far.
std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header);

/// The auth files in the order docs/cli.md gives ("Registries: TLS and
/// credentials"): --authfile, $REGISTRY_AUTH_FILE,
/// $XDG_RUNTIME_DIR/containers/auth.json, $XDG_CONFIG_HOME/containers/auth.json
/// (~/.config/...), $DOCKER_CONFIG/config.json or ~/.docker/config.json.
/// With `authfile` set, only that file.
std::vector<std::string> AuthFileCandidates(const std::string& authfile);

/// Credentials for `registry` (host[:port]) from the first auth file that has
/// an entry (auths, credHelpers, credsStore via docker-credential-NAME).
/// nullopt when none has one. Errors name the file, never a secret.
Expected<std::optional<Credentials>> LookupCredentials(const std::string& registry,
                                                       const std::string& authfile);

/// Writes credentials for `registry` into the first writable candidate (or
/// `authfile`), mode 0600, keeping the other entries. Returns the file path.
Expected<std::string> StoreCredentials(const std::string& registry, const Credentials& creds,
                                       const std::string& authfile);

/// The key an auth-file entry is stored under: scheme and path dropped
/// ("https://index.docker.io/v1/" -> "index.docker.io").
std::string NormalizeKey(std::string key);

/// Removes `registry` (or, with all, every entry) from the auth files.
/// kNotFound when there was nothing to remove.
Status RemoveCredentials(const std::string& registry, bool all, const std::string& authfile);

// ---------------------------------------------------------------- client

struct ProgressEvent {
  std::string what;     // "copying blob sha256:1234abcd", "writing manifest"
  uint64_t done = 0;
  uint64_t total = 0;   // 0 when unknown
  bool finished = false;
};
using ProgressFn = std::function<void(const ProgressEvent&)>;

struct ClientOptions {
  /// false: skip certificate checks and allow plain HTTP for any host.
  bool tls_verify = true;
  /// CA/client certificates; "" means /etc/containers/certs.d/HOST:PORT and
  /// /etc/docker/certs.d/HOST:PORT.
  std::string cert_dir;
  std::string authfile;
  /// Explicit credentials (login, --creds); otherwise the auth files.
  std::optional<Credentials> credentials;
  /// Concurrent blob transfers per client.
  int max_connections = 4;
  /// Attempts per request on transient errors (reset, 429, 5xx).
  int max_attempts = 5;
  /// Backoff: base * 2^(attempt-1), capped at 30 s; Retry-After wins (capped
  /// at max_retry_after).
  std::chrono::milliseconds retry_base{500};
  std::chrono::seconds max_retry_after{60};
  int idle_timeout_s = 60;
  /// Test seam; borrowed. nullptr: the curl transport.
  HttpTransport* transport = nullptr;
  ProgressFn progress;  // may be empty
};

/// A manifest or index as the registry returned it, digest verified.
struct ManifestBlob {
  std::string media_type;
  std::string body;
  Digest digest;
};

/// Result of a manifest HEAD.
struct ManifestHead {
  std::string media_type;
  Digest digest;  // from Docker-Content-Digest (not verified: no body)
  int64_t size = -1;
};

/// A client for one registry host ("host[:port]"; "docker.io" maps to
/// registry-1.docker.io). Thread-safe: blob calls may run in parallel, at
/// most max_connections at a time.
class RegistryClient {
 public:
  static Expected<std::unique_ptr<RegistryClient>> Create(std::string registry,
                                                          ClientOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  const std::string& registry() const { return registry_; }
  /// "https://host:port" or "http://..." once pinged.
  Expected<std::string> BaseUrl();

  /// GET /v2/ with credentials: kAuth if they are refused. (login)
  Status Ping();

  /// GET a manifest by tag or digest, with Accept for OCI and Docker types.
  /// Pulling by digest verifies the body against it.
  Expected<ManifestBlob> GetManifest(const std::string& repo, const std::string& ref);
  /// HEAD a manifest; nullopt on 404.
  Expected<std::optional<ManifestHead>> HeadManifest(const std::string& repo,
                                                     const std::string& ref);
  /// PUT a manifest under a tag or digest; returns its digest.
  Expected<Digest> PutManifest(const std::string& repo, const std::string& ref,
                               std::string_view media_type, const std::string& body);

  /// HEAD a blob: true when the registry has it.
  Expected<bool> BlobExists(const std::string& repo, const Digest& digest);
  /// Downloads a blob into `fd` (truncated first), resuming with Range after
  /// a broken connection. Reads at most `size` bytes (size < 0: unknown,
  /// capped at `max_unknown`); fails with kCorrupt unless digest and size
  /// match. On error the fd holds garbage: the caller discards it.
  /// `on_data`, when set, sees every byte right after it was written to `fd`
  /// (and hashed), with its offset in the blob: a restart from 0 shows as an
  /// offset that goes back. The digest check covers exactly these bytes, so
  /// a consumer of a gap-free stream need not hash it again (StreamingUnpack).
  Status FetchBlob(const std::string& repo, const Digest& digest, int64_t size, int fd,
                   const std::function<void(std::string_view data, uint64_t offset)>& on_data = {});
  /// A small blob (config) into memory, verified; capped at 4 MiB.
  Expected<std::string> FetchBlobBytes(const std::string& repo, const Digest& digest,
                                       int64_t size);
  /// Uploads `size` bytes read from `fd` (from offset 0) as `digest`:
  /// HEAD first (skip when present), a cross-repository mount from
  /// `mount_from` when given, else POST + PUT (monolithic) or, with
  /// chunk_size > 0, POST + PATCH... + PUT.
  struct UploadResult {
    bool existed = false;
    bool mounted = false;
  };
  Expected<UploadResult> UploadBlob(const std::string& repo, const Digest& digest, int64_t size,
                                    int fd, const std::string& mount_from = "",
                                    uint64_t chunk_size = 0);

  /// All tags, following Link: <...>; rel="next" pagination.
  Expected<std::vector<std::string>> ListTags(const std::string& repo);

  /// Referrers API (GET /v2/<repo>/referrers/<digest>): the index body, or
  /// kUnsupported when the registry does not offer it.
  Expected<std::string> Referrers(const std::string& repo, const Digest& digest);

  const ClientOptions& options() const { return options_; }

  struct Impl;  // opaque: connection state, auth cache, transfer slots

 private:
  RegistryClient(std::string registry, ClientOptions options);

  std::string registry_;
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

/// What FetchUrl() got.
struct UrlFetch {
  std::string url;             // after redirects
  int status = 0;
  bool not_modified = false;   // 304 to a conditional request: nothing was written
  std::string etag;
  std::string last_modified;
  std::string content_disposition;
  int64_t size = 0;            // bytes written
};

/// GETs `url` (http or https) into `fd` (truncated first), with `headers`
/// (If-None-Match, If-Modified-Since). Follows up to 10 redirects, never
/// from HTTPS to plain HTTP; retries transient failures as the registry
/// client does (options.max_attempts, retry_base); TLS from
/// options.cert_dir, else certs.d of the URL's host:port, and
/// options.tls_verify. No credentials are sent. kNotFound on 404, kNetwork
/// on other failures, naming the URL and the status.
Expected<UrlFetch> FetchUrl(const std::string& url, const std::vector<HttpHeader>& headers, int fd,
                            const ClientOptions& options);

/// True for localhost, 127.0.0.0/8 and ::1 (with or without a port): the
/// registries that may speak plain HTTP without --tls-verify=false.
bool IsLoopbackRegistry(std::string_view host_port);

/// Resolves `location` (absolute, scheme-relative, absolute-path or
/// relative) against `base` URL.
std::string ResolveUrl(const std::string& base, const std::string& location);
/// "scheme://host:port" of a URL, with the default port made explicit.
std::string UrlOrigin(const std::string& url);

}  // namespace kiln::registry

// ---------------------------------------------------------------- pull / push
//
// The image-level operations over a Store, in src/registry/transfer.cpp.

namespace kiln::registry {

struct PullOptions {
  /// Which manifest of an index to pull (default: the host's platform).
  std::optional<Platform> platform;
  /// Pull every manifest of an index, and record the index itself.
  bool all_platforms = false;
  ClientOptions client;
  /// One line per event ("Copying blob sha256:0123456789ab done"); may be empty.
  std::function<void(const std::string&)> progress;
  /// Unpack each layer into the store's layer directories while it downloads
  /// (only meaningful inside kiln's user namespace, where builds and runs
  /// create their layer directories; the docker:// transport sets it there).
  bool unpack_layers = false;
  /// Called with the top manifest's digest once it is fetched and verified,
  /// before any blob is stored (the signature policy); an error stops the pull.
  std::function<Status(RegistryClient& client, const std::string& repo, const Digest& top)> verify;
};

struct PushOptions {
  ClientOptions client;
  std::function<void(const std::string&)> progress;
  /// Called after the image is pushed, with its top manifest's digest (signing).
  std::function<Status(RegistryClient& client, const std::string& repo, const Digest& top)> after_push;
};

/// Pulls `ref` into the store: manifest (verified when pulled by digest),
/// config and layers (in parallel, at most client.max_connections, each
/// streamed into a BlobWriter and committed only when digest and size
/// match). Blobs already in the store are not downloaded. Returns the
/// descriptor to record (the platform's manifest, or the index with
/// all_platforms) and the name to give it (`ref`, when it has a tag). The
/// caller names it with Store::AddImage().
Expected<PulledImage> PullFromRegistry(Store& store, const ImageReference& ref,
                                       const PullOptions& options);

/// Pushes `image` (its top manifest or index, with every child manifest,
/// config and layer) to `dest`. Blobs the registry has are skipped (HEAD);
/// a blob of another repository on the same registry is mounted. The
/// manifests are pushed byte for byte, so digests are preserved.
Status PushToRegistry(Store& store, const StoredImage& image, const ImageReference& dest,
                      const PushOptions& options);

/// Registers the "docker" transport (docker://REF) with RegisterTransport()
/// so that PullImage()/PushImage() reach the registry. Call once at start-up.
void RegisterDockerTransport();

/// Client options from the transport options (tls_verify, cert_dir,
/// authfile; progress lines unless quiet).
ClientOptions ClientOptionsFrom(const TransferOptions& options);

}  // namespace kiln::registry
