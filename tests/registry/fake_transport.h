// FakeTransport: an HttpTransport whose replies come from a test's handler.
// It honours the transport contract the client relies on: no redirects
// followed, on_headers then sink for 2xx bodies, buffered bodies otherwise,
// and a reply may "reset the connection" after part of its body.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/registry.h"

namespace kiln::registry::test {

struct FakeReply {
  int status = 200;
  std::vector<HttpHeader> headers;
  std::string body;
  /// >= 0: deliver only this many body bytes, then fail with a reset.
  long reset_after = -1;
  /// true: fail before any response (connection refused/reset).
  bool connect_error = false;
};

class FakeTransport final : public HttpTransport {
 public:
  using Handler = std::function<FakeReply(const HttpRequest&)>;
  explicit FakeTransport(Handler h) : handler_(std::move(h)) {}

  Expected<HttpResponse> Send(const HttpRequest& req) override {
    HttpRequest copy = req;
    if (req.body_fd >= 0) {
      copy.body.resize(req.body_length);
      ssize_t n = ::pread(req.body_fd, copy.body.data(), req.body_length,
                          static_cast<off_t>(req.body_offset));
      copy.body.resize(n < 0 ? 0 : static_cast<size_t>(n));
    }
    copy.sink = nullptr;
    copy.on_headers = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(copy);
    }
    FakeReply reply = handler_(copy);
    if (reply.connect_error)
      return Error(Errc::kNetwork, req.method + " " + req.url + ": connection reset by peer");
    HttpResponse resp;
    resp.status = reply.status;
    resp.headers = reply.headers;
    for (auto& h : resp.headers)
      for (auto& ch : h.name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string body = reply.body;
    bool reset = reply.reset_after >= 0 && static_cast<size_t>(reply.reset_after) < body.size();
    if (reset)
      body.resize(static_cast<size_t>(reply.reset_after));
    if (req.method == "HEAD")
      body.clear();
    if (req.sink && resp.status >= 200 && resp.status < 300) {
      if (req.on_headers)
        KILN_TRY(req.on_headers(resp));
      // In two pieces, as a network would.
      size_t half = body.size() / 2;
      if (half > 0)
        KILN_TRY(req.sink(std::string_view(body).substr(0, half)));
      if (body.size() > half)
        KILN_TRY(req.sink(std::string_view(body).substr(half)));
    } else {
      if (body.size() > req.max_body)
        return Error(Errc::kCorrupt, "body too large");
      resp.body = body;
    }
    if (reset)
      return Error(Errc::kNetwork, req.method + " " + req.url + ": connection reset by peer");
    return resp;
  }

  std::vector<HttpRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  Handler handler_;
  std::mutex mu_;
  std::vector<HttpRequest> requests_;
};

/// Value of a request header, or "".
inline std::string RequestHeader(const HttpRequest& r, std::string_view name) {
  for (const auto& h : r.headers)
    if (h.name == name)
      return h.value;
  return "";
}

}  // namespace kiln::registry::test
