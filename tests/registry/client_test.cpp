// Unit tests of the registry client over FakeTransport: auth flows, retries,
// redirects, verified downloads, uploads. No network.
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/oci.h"
#include "kiln/registry.h"
#include "registry/fake_transport.h"
#include "registry/internal.h"

namespace kiln::registry {
namespace {

using test::FakeReply;
using test::FakeTransport;
using test::RequestHeader;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// A fake registry's handler: the /v2/ ping answers 200, any other request
/// `serve`.
FakeTransport::Handler AfterPing(FakeTransport::Handler serve) {
  return [serve = std::move(serve)](const HttpRequest& r) -> FakeReply {
    if (EndsWith(r.url, "/v2/"))
      return {200};
    return serve(r);
  };
}

ClientOptions FastOptions(HttpTransport* t) {
  ClientOptions o;
  o.transport = t;
  o.retry_base = std::chrono::milliseconds(1);
  o.max_retry_after = std::chrono::seconds(1);
  o.authfile = "/nonexistent/kiln-test-auth.json";  // never the user's files
  o.credentials = Credentials{};                   // anonymous unless a test sets some
  return o;
}

std::unique_ptr<RegistryClient> MakeClient(const std::string& host, ClientOptions o) {
  auto c = RegistryClient::Create(host, std::move(o));
  EXPECT_TRUE(c) << c.error().message();
  return std::move(*c);
}

struct TempFile {
  TempDir dir = std::move(*TempDir::Create("kiln-regtest-"));
  std::string path = JoinPath(dir.path(), "f");
  UniqueFd fd = std::move(*OpenFile(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
  TempFile() = default;
  explicit TempFile(std::string_view data) { EXPECT_TRUE(WriteAll(fd.get(), data)); }
};

// ------------------------------------------------------------ parsing helpers

TEST(WwwAuthenticateTest, BearerWithQuotedParams) {
  auto ch = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push")");
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].scheme, "bearer");
  EXPECT_EQ(ch[0].params["realm"], "https://auth.example/token");
  EXPECT_EQ(ch[0].params["service"], "reg.example");
  EXPECT_EQ(ch[0].params["scope"], "repository:a/b:pull,push");
}

TEST(WwwAuthenticateTest, SeveralChallengesAndTokens) {
  auto ch = ParseWwwAuthenticate(R"(Basic realm="Registry Realm", Bearer realm=https://x/t, error=insufficient_scope)");
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch[0].scheme, "basic");
  EXPECT_EQ(ch[0].params["realm"], "Registry Realm");
  EXPECT_EQ(ch[1].scheme, "bearer");
  EXPECT_EQ(ch[1].params["realm"], "https://x/t");
  EXPECT_EQ(ch[1].params["error"], "insufficient_scope");
  EXPECT_TRUE(ParseWwwAuthenticate("").empty());
}

TEST(UrlTest, ResolveAndOrigin) {
  EXPECT_EQ(ResolveUrl("https://r:5000/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/u1?x=1"),
            "https://r:5000/v2/a/blobs/uploads/u1?x=1");
  EXPECT_EQ(ResolveUrl("https://r/v2/a/x", "y"), "https://r/v2/a/y");
  EXPECT_EQ(ResolveUrl("https://r/v2/", "//cdn.example/b"), "https://cdn.example/b");
  EXPECT_EQ(ResolveUrl("https://r/v2/", "http://o/p"), "http://o/p");
  EXPECT_EQ(UrlOrigin("https://R.example/v2/"), "https://r.example:443");
  EXPECT_EQ(UrlOrigin("http://r.example:80/x"), "http://r.example:80");
  EXPECT_NE(UrlOrigin("https://r.example:5000/x"), UrlOrigin("https://r.example/x"));
}

TEST(UrlTest, Loopback) {
  EXPECT_TRUE(IsLoopbackRegistry("localhost:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackRegistry("127.3.4.5:80"));
  EXPECT_TRUE(IsLoopbackRegistry("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("127.0.0.1.evil.example"));
  EXPECT_FALSE(IsLoopbackRegistry("10.0.0.1:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("localhost.example"));
}

TEST(UrlTest, LinkHeaderAndErrors) {
  EXPECT_EQ(NextLink(R"(</v2/a/tags/list?last=b&n=2>; rel="next")", "https://r/v2/a/tags/list"),
            "https://r/v2/a/tags/list?last=b&n=2");
  EXPECT_EQ(NextLink(R"(<https://r/x>; rel="prev")", "https://r/"), "");
  HttpResponse r;
  r.status = 404;
  r.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})";
  EXPECT_EQ(DescribeHttpError(r), "404 not found (MANIFEST_UNKNOWN: manifest unknown)");
}

TEST(RetryTest, DelayHonoursRetryAfterAndCaps) {
  HttpResponse r;
  r.headers.push_back({"retry-after", "3"});
  EXPECT_EQ(RetryDelay(1, std::chrono::milliseconds(100), std::chrono::seconds(60), &r).count(), 3000);
  EXPECT_EQ(RetryDelay(1, std::chrono::milliseconds(100), std::chrono::seconds(2), &r).count(), 2000);
  EXPECT_EQ(RetryDelay(3, std::chrono::milliseconds(100), std::chrono::seconds(60), nullptr).count(), 400);
  EXPECT_EQ(RetryDelay(30, std::chrono::milliseconds(100), std::chrono::seconds(60), nullptr).count(), 30000);
  EXPECT_TRUE(IsTransientStatus(503));
  EXPECT_FALSE(IsTransientStatus(401));
  EXPECT_FALSE(IsTransientStatus(404));
}

// ------------------------------------------------------------ auth flows

TEST(ClientTest, BearerTokenFlowAndCachePerScope) {
  const std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]})";
  std::atomic<int> token_calls{0};
  FakeTransport t([&](const HttpRequest& r) -> FakeReply {
    if (r.url.rfind("https://auth.example/token", 0) == 0) {
      ++token_calls;
      EXPECT_NE(r.url.find("service=reg.example"), std::string::npos) << r.url;
      EXPECT_NE(r.url.find("scope=repository:team/app:pull"), std::string::npos) << r.url;
      EXPECT_EQ(RequestHeader(r, "Authorization"), "Basic " + Base64Encode("alice:s3cret"));
      return {200, {}, R"({"token":"tok-1","expires_in":300})"};
    }
    if (RequestHeader(r, "Authorization") != "Bearer tok-1")
      return {401,
              {{"WWW-Authenticate",
                R"(Bearer realm="https://auth.example/token",service="reg.example")"}},
              R"({"errors":[{"code":"UNAUTHORIZED"}]})"};
    if (EndsWith(r.url, "/manifests/1.0"))
      return {200, {{"Content-Type", std::string(kMediaTypeOciManifest)}}, manifest};
    return {404};
  });
  auto o = FastOptions(&t);
  o.credentials = Credentials{"alice", "s3cret"};
  auto client = MakeClient("reg.example", o);
  auto m = client->GetManifest("team/app", "1.0");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->media_type, kMediaTypeOciManifest);
  EXPECT_EQ(m->digest, Digest::Of(manifest));
  auto again = client->GetManifest("team/app", "1.0");
  ASSERT_TRUE(again);
  EXPECT_EQ(token_calls.load(), 1) << "the token is cached per scope";
}

TEST(ClientTest, RefusedCredentialsAreKAuthAndNeverShown) {
  FakeTransport t([&](const HttpRequest& r) -> FakeReply {
    if (r.url.rfind("https://auth.example/", 0) == 0)
      return {401, {}, R"({"details":"bad password"})"};
    return {401, {{"WWW-Authenticate", R"(Bearer realm="https://auth.example/token",service="r")"}}};
  });
  auto o = FastOptions(&t);
  o.credentials = Credentials{"alice", "hunter2-secret"};
  auto client = MakeClient("reg.example", o);
  auto s = client->Ping();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kAuth);
  EXPECT_EQ(s.error().message().find("hunter2"), std::string::npos) << s.error().message();
  EXPECT_EQ(s.error().message().find(Base64Encode("alice:hunter2-secret")), std::string::npos);
}

TEST(ClientTest, BasicAuthAfterChallenge) {
  FakeTransport t([&](const HttpRequest& r) -> FakeReply {
    if (RequestHeader(r, "Authorization") != "Basic " + Base64Encode("bob:pw"))
      return {401, {{"WWW-Authenticate", R"(Basic realm="Registry Realm")"}}};
    return {200, {}, "{}"};
  });
  auto o = FastOptions(&t);
  o.credentials = Credentials{"bob", "pw"};
  auto client = MakeClient("reg.example", o);
  ASSERT_TRUE(client->Ping());
  auto tags = client->ListTags("x");  // basic is sent up front now
  (void)tags;
  auto reqs = t.requests();
  EXPECT_EQ(RequestHeader(reqs.back(), "Authorization"), "Basic " + Base64Encode("bob:pw"));
}

TEST(ClientTest, TokenRealmMustBeHttps) {
  FakeTransport t([&](const HttpRequest& r) -> FakeReply {
    if (r.url.rfind("http://evil.example", 0) == 0)
      ADD_FAILURE() << "token fetched over plain http from a non-loopback realm";
    return {401, {{"WWW-Authenticate", R"(Bearer realm="http://evil.example/token")"}}};
  });
  auto client = MakeClient("reg.example", FastOptions(&t));
  auto m = client->GetManifest("a", "latest");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Errc::kAuth);
  EXPECT_NE(m.error().message().find("refusing token realm"), std::string::npos);
}

// ------------------------------------------------------------ retries

TEST(ClientTest, RetriesAfter429WithRetryAfter) {
  std::atomic<int> calls{0};
  FakeTransport t(AfterPing([&](const HttpRequest&) -> FakeReply {
    if (++calls == 1)
      return {429, {{"Retry-After", "1"}}, R"({"errors":[{"code":"TOOMANYREQUESTS"}]})"};
    return {200, {{"Content-Type", std::string(kMediaTypeOciIndex)}}, R"({"schemaVersion":2,"manifests":[]})"};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  auto start = std::chrono::steady_clock::now();
  auto m = client->GetManifest("a", "latest");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900))
      << "Retry-After was not honoured";
}

TEST(ClientTest, Persistent503FailsWithStatusAndUrl) {
  std::atomic<int> calls{0};
  FakeTransport t(AfterPing([&](const HttpRequest&) -> FakeReply {
    ++calls;
    return {503};
  }));
  auto o = FastOptions(&t);
  o.max_attempts = 3;
  auto client = MakeClient("reg.example", o);
  auto m = client->GetManifest("a", "latest");
  ASSERT_FALSE(m);
  EXPECT_EQ(calls.load(), 3);
  EXPECT_NE(m.error().message().find("503 service unavailable"), std::string::npos) << m.error().message();
  EXPECT_NE(m.error().message().find("https://reg.example/v2/a/manifests/latest"), std::string::npos);
}

TEST(ClientTest, NotFoundIsNotRetried) {
  std::atomic<int> calls{0};
  FakeTransport t(AfterPing([&](const HttpRequest&) -> FakeReply {
    ++calls;
    return {404, {}, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  auto m = client->GetManifest("a", "nope");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Errc::kNotFound);
  EXPECT_EQ(calls.load(), 1);
}

TEST(ClientTest, ManifestByDigestIsVerified) {
  FakeTransport t(AfterPing([&](const HttpRequest&) -> FakeReply {
    return {200, {{"Content-Type", std::string(kMediaTypeOciManifest)}}, R"({"schemaVersion":2,"layers":[]})"};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  auto m = client->GetManifest("a", Digest::Of("something else").str());
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Errc::kCorrupt);
  EXPECT_NE(m.error().message().find("digest mismatch"), std::string::npos);
}

TEST(ClientTest, MediaTypeMismatchIsRejected) {
  FakeTransport t(AfterPing([&](const HttpRequest&) -> FakeReply {
    return {200, {{"Content-Type", std::string(kMediaTypeOciManifest)}},
            R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})"};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  auto m = client->GetManifest("a", "latest");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Errc::kCorrupt);
}

// ------------------------------------------------------------ blob downloads

TEST(ClientTest, BlobResumesWithRangeAfterReset) {
  std::string blob(100000, 'x');
  for (size_t i = 0; i < blob.size(); ++i)
    blob[i] = static_cast<char>(i * 7);
  Digest d = Digest::Of(blob);
  std::atomic<int> calls{0};
  std::string range_seen;
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    if (++calls == 1)
      return {200, {}, blob, 30000};
    range_seen = RequestHeader(r, "Range");
    return {206, {{"Content-Range", "bytes 30000-99999/100000"}}, blob.substr(30000)};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  TempFile f;
  auto s = client->FetchBlob("a", d, static_cast<int64_t>(blob.size()), f.fd.get());
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(range_seen, "bytes=30000-");
  EXPECT_EQ(*ReadFile(f.path), blob);
}

TEST(ClientTest, BlobRestartsWhenRangeIsIgnoredOrWrong) {
  std::string blob(50000, 'y');
  Digest d = Digest::Of(blob);
  std::atomic<int> calls{0};
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    int n = ++calls;
    if (n == 1)
      return {200, {}, blob, 1000};
    if (n == 2)  // wrong start: must not be appended
      return {206, {{"Content-Range", "bytes 0-49999/50000"}}, blob};
    if (n == 3) {
      EXPECT_EQ(RequestHeader(r, "Range"), "") << "Range must be dropped after a bad Content-Range";
      return {200, {}, blob, 20000};
    }
    return {200, {}, blob};  // Range ignored: full body from 0
  }));
  auto o = FastOptions(&t);
  o.max_attempts = 6;
  auto client = MakeClient("reg.example", o);
  TempFile f;
  auto s = client->FetchBlob("a", d, static_cast<int64_t>(blob.size()), f.fd.get());
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(*ReadFile(f.path), blob);
}

TEST(ClientTest, BadDigestFailsAfterRetries) {
  std::string blob = "the real content";
  std::atomic<int> calls{0};
  FakeTransport t(AfterPing([&](const HttpRequest&) -> FakeReply {
    ++calls;
    return {200, {}, "THE REAL CONTENT"};  // right length, wrong bytes
  }));
  auto o = FastOptions(&t);
  o.max_attempts = 2;
  auto client = MakeClient("reg.example", o);
  TempFile f;
  auto s = client->FetchBlob("a", Digest::Of(blob), static_cast<int64_t>(blob.size()), f.fd.get());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kCorrupt);
  EXPECT_NE(s.error().message().find("digest mismatch"), std::string::npos) << s.error().message();
  EXPECT_EQ(calls.load(), 2);
}

TEST(ClientTest, OversizedBlobStopsAtDescriptorSize) {
  std::string blob = "abc";
  FakeTransport t(AfterPing([&](const HttpRequest&) -> FakeReply {
    return {200, {}, std::string(1 << 20, 'z')};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  TempFile f;
  auto s = client->FetchBlob("a", Digest::Of(blob), 3, f.fd.get());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kCorrupt);
  EXPECT_NE(s.error().message().find("size mismatch"), std::string::npos);
  struct stat st;
  ASSERT_EQ(::fstat(f.fd.get(), &st), 0);
  EXPECT_LE(st.st_size, 3);
}

TEST(ClientTest, RedirectDropsAuthorizationForOtherOrigins) {
  std::string blob = "layer bytes";
  FakeTransport t([&](const HttpRequest& r) -> FakeReply {
    if (r.url.rfind("https://auth.example/", 0) == 0)
      return {200, {}, R"({"token":"T"})"};
    if (r.url.rfind("https://cdn.example/", 0) == 0) {
      EXPECT_EQ(RequestHeader(r, "Authorization"), "") << "Authorization leaked to the CDN";
      return {200, {}, blob};
    }
    if (RequestHeader(r, "Authorization") != "Bearer T")
      return {401, {{"WWW-Authenticate", R"(Bearer realm="https://auth.example/t")"}}};
    if (r.url.find("/blobs/") != std::string::npos)
      return {307, {{"Location", "https://cdn.example/blob?sig=1"}}};
    return {200};
  });
  auto client = MakeClient("reg.example", FastOptions(&t));
  TempFile f;
  auto s = client->FetchBlob("a", Digest::Of(blob), static_cast<int64_t>(blob.size()), f.fd.get());
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(*ReadFile(f.path), blob);
}

TEST(ClientTest, RedirectDowngradeToHttpIsRefused) {
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    if (r.url.rfind("http://", 0) == 0)
      ADD_FAILURE() << "followed a downgrade";
    return {302, {{"Location", "http://cdn.example/blob"}}};
  }));
  auto o = FastOptions(&t);
  o.max_attempts = 1;
  auto client = MakeClient("reg.example", o);
  TempFile f;
  auto s = client->FetchBlob("a", Digest::Of("x"), 1, f.fd.get());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("https to http"), std::string::npos) << s.error().message();
}

TEST(ClientTest, PlainHttpOnlyForLoopback) {
  std::vector<std::string> urls;
  std::mutex mu;
  FakeTransport t([&](const HttpRequest& r) -> FakeReply {
    {
      std::lock_guard<std::mutex> lock(mu);
      urls.push_back(r.url);
    }
    if (r.url.rfind("https://", 0) == 0)
      return {.connect_error = true};
    return {200};
  });
  auto o = FastOptions(&t);
  o.max_attempts = 1;
  auto remote = MakeClient("reg.example:5000", o);
  auto b = remote->BaseUrl();
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("--tls-verify=false"), std::string::npos);
  for (const auto& u : urls)
    EXPECT_EQ(u.rfind("http://", 0), std::string::npos) << "tried plain http: " << u;
  auto local = MakeClient("127.0.0.1:5000", o);
  auto lb = local->BaseUrl();
  ASSERT_TRUE(lb) << lb.error().message();
  EXPECT_EQ(*lb, "http://127.0.0.1:5000");
  o.tls_verify = false;
  auto insecure = MakeClient("reg.example:5000", o);
  auto ib = insecure->BaseUrl();
  ASSERT_TRUE(ib);
  EXPECT_EQ(*ib, "http://reg.example:5000");
}

// A loopback registry whose certificate cannot be verified (self-signed):
// an error naming the registry, the URL and curl's reason with the certs.d
// hint; never a retry, never a fall-back to plain HTTP (x21).
TEST(ClientTest, CertificateFailureIsNotAFallBack) {
  struct TlsFailTransport final : HttpTransport {
    std::mutex mu;
    std::vector<std::string> urls;
    Expected<HttpResponse> Send(const HttpRequest& r) override {
      std::lock_guard<std::mutex> lock(mu);
      urls.push_back(r.url);
      if (r.url.rfind("https://", 0) == 0)
        return Error(Errc::kNetwork, r.method + " " + r.url + ": " + std::string(kTlsVerifyFailed) +
                                         ": SSL certificate problem: self-signed certificate");
      HttpResponse resp;
      resp.status = 200;
      return resp;
    }
  } t;
  auto o = FastOptions(&t);
  auto local = MakeClient("127.0.0.1:5000", o);
  auto b = local->BaseUrl();
  ASSERT_FALSE(b) << *b;
  const std::string& m = b.error().message();
  EXPECT_NE(m.find("registry 127.0.0.1:5000"), std::string::npos) << m;
  EXPECT_NE(m.find("https://127.0.0.1:5000/v2/"), std::string::npos) << m;
  EXPECT_NE(m.find("self-signed certificate"), std::string::npos) << m;
  EXPECT_NE(m.find("/etc/containers/certs.d/127.0.0.1:5000/ca.crt"), std::string::npos) << m;
  EXPECT_NE(m.find("--tls-verify=false"), std::string::npos) << m;
  ASSERT_EQ(t.urls.size(), 1u) << "retried or fell back to plain http";
  TempDir certs = std::move(*TempDir::Create("kiln-regtest-"));
  o.cert_dir = certs.path();
  t.urls.clear();
  auto with_dir = MakeClient("127.0.0.1:5000", o);
  auto wb = with_dir->BaseUrl();
  ASSERT_FALSE(wb);
  EXPECT_NE(wb.error().message().find(certs.path() + "/ca.crt"), std::string::npos)
      << wb.error().message();
}

// ------------------------------------------------------------ uploads

TEST(ClientTest, MonolithicUploadThenConfirm) {
  std::string blob = "upload me";
  Digest d = Digest::Of(blob);
  bool stored = false;
  std::string put_body;
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    if (r.method == "HEAD")
      return {stored ? 200 : 404};
    if (r.method == "POST")
      return {202, {{"Location", "/v2/a/blobs/uploads/abc?_state=s"}}};
    if (r.method == "PUT") {
      EXPECT_NE(r.url.find("/v2/a/blobs/uploads/abc?_state=s&digest=" + d.str()), std::string::npos) << r.url;
      put_body = r.body;
      stored = true;
      return {201};
    }
    return {400};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  TempFile f(blob);
  auto r = client->UploadBlob("a", d, static_cast<int64_t>(blob.size()), f.fd.get());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->existed);
  EXPECT_EQ(put_body, blob);
  auto again = client->UploadBlob("a", d, static_cast<int64_t>(blob.size()), f.fd.get());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->existed) << "HEAD must skip a blob the registry has";
}

TEST(ClientTest, ChunkedUploadFollowsRangeAndRestartsExpiredSession) {
  std::string blob(1000, 'c');
  for (size_t i = 0; i < blob.size(); ++i)
    blob[i] = static_cast<char>('a' + i % 26);
  Digest d = Digest::Of(blob);
  std::string received;
  int sessions = 0;
  bool stored = false;
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    if (r.method == "HEAD")
      return {stored ? 200 : 404};
    if (r.method == "POST") {
      ++sessions;
      received.clear();
      return {202, {{"Location", "https://reg.example/v2/a/blobs/uploads/s" + std::to_string(sessions)}}};
    }
    if (r.method == "PATCH") {
      if (sessions == 1 && received.size() >= 400)
        return {404, {}, R"({"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]})"};
      // Accept only the first 100 bytes of each chunk: the client must resend the rest.
      std::string part = r.body.substr(0, 100);
      received += part;
      return {202, {{"Range", "0-" + std::to_string(received.size() - 1)},
                    {"Location", r.url}}};
    }
    if (r.method == "PUT") {
      EXPECT_TRUE(r.body.empty());
      if (received != blob)
        return {400, {}, R"({"errors":[{"code":"DIGEST_INVALID"}]})"};
      stored = true;
      return {201};
    }
    return {400};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  TempFile f(blob);
  auto r = client->UploadBlob("a", d, static_cast<int64_t>(blob.size()), f.fd.get(), "", 256);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(sessions, 2);
  EXPECT_EQ(received, blob);
}

TEST(ClientTest, CrossRepositoryMount) {
  std::string blob = "shared layer";
  Digest d = Digest::Of(blob);
  bool mounted = false;
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    if (r.method == "HEAD")
      return {mounted ? 200 : 404};
    if (r.method == "POST") {
      EXPECT_NE(r.url.find("?mount=" + d.str() + "&from=base/img"), std::string::npos);
      mounted = true;
      return {201, {{"Location", "/v2/app/blobs/" + d.str()}}};
    }
    ADD_FAILURE() << "unexpected " << r.method << " " << r.url;
    return {400};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  TempFile f(blob);
  auto r = client->UploadBlob("app", d, static_cast<int64_t>(blob.size()), f.fd.get(), "base/img");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->mounted);
}

TEST(ClientTest, UploadAcceptedButMissingIsAnError) {
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    if (r.method == "HEAD")
      return {404};
    if (r.method == "POST")
      return {202, {{"Location", "/v2/a/blobs/uploads/x"}}};
    return {201};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  TempFile f("z");
  auto r = client->UploadBlob("a", Digest::Of("z"), 1, f.fd.get());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("does not have it"), std::string::npos);
}

// ------------------------------------------------------------ tags

TEST(ClientTest, TagListPagination) {
  FakeTransport t(AfterPing([&](const HttpRequest& r) -> FakeReply {
    if (r.url.find("last=b") == std::string::npos)
      return {200, {{"Link", R"(</v2/a/tags/list?last=b&n=2>; rel="next")"}}, R"({"name":"a","tags":["a","b"]})"};
    return {200, {}, R"({"name":"a","tags":["c"]})"};
  }));
  auto client = MakeClient("reg.example", FastOptions(&t));
  auto tags = client->ListTags("a");
  ASSERT_TRUE(tags) << tags.error().message();
  EXPECT_EQ(*tags, (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace kiln::registry
