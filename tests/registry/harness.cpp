#include "registry/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "kiln/digest.h"

extern char** environ;

namespace kiln::registry::test {

using namespace std::chrono_literals;

// ------------------------------------------------------------ processes

CommandResult Run(const std::vector<std::string>& argv, const std::string& input, int timeout_s,
                  const std::vector<std::string>& extra_env) {
  CommandResult r;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
    return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e)
    env_store.emplace_back(*e);
  for (const auto& e : extra_env) {
    std::string key = e.substr(0, e.find('='));
    std::erase_if(env_store, [&](const std::string& s) { return s.rfind(key + "=", 0) == 0; });
    env_store.push_back(e);
  }
  std::vector<char*> envp;
  for (auto& e : env_store)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    r.err = std::string("spawn ") + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  ::signal(SIGPIPE, SIG_IGN);
  size_t written = 0;
  int in_fd = in[1];
  ::fcntl(in_fd, F_SETFL, O_NONBLOCK);  // never block on a full pipe while output waits
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3];
    int n = 0;
    if (out_open)
      fds[n++] = {out[0], POLLIN, 0};
    if (err_open)
      fds[n++] = {err[0], POLLIN, 0};
    if (in_fd >= 0)
      fds[n++] = {in_fd, POLLOUT, 0};
    if (::poll(fds, static_cast<nfds_t>(n), 200) <= 0)
      continue;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents)
        continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = ::write(in_fd, input.data() + written, input.size() - written);
        if (w > 0)
          written += static_cast<size_t>(w);
        if (w < 0 && errno == EAGAIN)
          continue;
        if (w < 0 || written == input.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        if (fds[i].fd == out[0])
          out_open = false;
        else
          err_open = false;
        continue;
      }
      (fds[i].fd == out[0] ? r.out : r.err).append(buf, static_cast<size_t>(got));
    }
  }
  if (in_fd >= 0)
    ::close(in_fd);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

namespace {

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int ListenLoopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(fd, 64);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads one HTTP request (head and Content-Length body). false on EOF/error.
// The next connection on `listen_fd` (polled every 100 ms); -1 once `stop`.
int AcceptUntil(int listen_fd, const std::atomic<bool>& stop) {
  while (!stop) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0)
      continue;
    if (int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC); fd >= 0)
      return fd;
  }
  return -1;
}

bool ReadRequest(int fd, std::string* head, std::string* body) {
  std::string buf;
  char tmp[65536];
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0)
      return false;
    buf.append(tmp, static_cast<size_t>(n));
    if (static_cast<unsigned char>(buf[0]) == 0x16)
      return false;  // a TLS ClientHello: this is a plain-HTTP server
  }
  *head = buf.substr(0, end + 4);
  *body = buf.substr(end + 4);
  size_t len = 0;
  std::string lower = *head;
  for (auto& ch : lower)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (auto p = lower.find("\r\ncontent-length:"); p != std::string::npos)
    len = std::stoul(lower.substr(p + 17));
  while (body->size() < len) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0)
      return false;
    body->append(tmp, static_cast<size_t>(n));
  }
  return true;
}

std::string ReadToEof(int fd) {
  std::string out;
  char tmp[65536];
  for (;;) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0)
      return out;
    out.append(tmp, static_cast<size_t>(n));
  }
}

std::string B64(std::string_view in, bool url) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  if (url) {
    while (!out.empty() && out.back() == '=')
      out.pop_back();
    for (auto& ch : out)
      ch = ch == '+' ? '-' : ch == '/' ? '_' : ch;
  }
  return out;
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

bool WaitForPort(int port, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    int fd = ConnectLoopback(port);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// ------------------------------------------------------------ token issuer

// Issues RS256 JWTs in distribution's format (x5c header with the signing
// certificate, which the registry trusts through rootcertbundle) to callers
// that present the right basic credentials.
struct RegistryServer::TokenIssuer {
  std::string user, password;
  EVP_PKEY* key = nullptr;
  std::string cert_der;
  int port = 0;
  int listen_fd = -1;
  std::atomic<bool> stop{false};
  std::thread thread;
  std::atomic<int> issued{0};

  ~TokenIssuer() {
    stop = true;
    if (listen_fd >= 0)
      ::shutdown(listen_fd, SHUT_RDWR);
    if (thread.joinable())
      thread.join();
    if (listen_fd >= 0)
      ::close(listen_fd);
    EVP_PKEY_free(key);
  }

  std::string Sign(const std::string& input) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    std::string sig;
    if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
        EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) == 1) {
      sig.resize(len);
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size());
      sig.resize(len);
    }
    EVP_MD_CTX_free(ctx);
    return sig;
  }

  std::string Reply(const std::string& head) {
    // GET /token?service=...&scope=... HTTP/1.1
    auto sp1 = head.find(' ');
    auto sp2 = head.find(' ', sp1 + 1);
    std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string lower = head;
    for (auto& ch : lower)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string auth;
    if (auto p = lower.find("\r\nauthorization: basic "); p != std::string::npos) {
      size_t start = p + 23;
      auth = head.substr(start, head.find("\r\n", start) - start);
    }
    if (auth != B64(user + ":" + password, false)) {
      std::string body = R"({"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]})";
      return "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    }
    nlohmann::json access = nlohmann::json::array();
    std::string service;
    size_t q = target.find('?');
    std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    size_t pos = 0;
    while (pos <= query.size()) {
      size_t amp = query.find('&', pos);
      std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      auto eq = kv.find('=');
      if (eq != std::string::npos) {
        std::string k = kv.substr(0, eq), v = UrlDecode(kv.substr(eq + 1));
        if (k == "service")
          service = v;
        if (k == "scope") {
          auto c1 = v.find(':');
          auto c2 = v.rfind(':');
          if (c1 != std::string::npos && c2 > c1) {
            nlohmann::json actions = nlohmann::json::array();
            std::string acts = v.substr(c2 + 1);
            size_t ap = 0;
            while (ap <= acts.size()) {
              size_t comma = acts.find(',', ap);
              actions.push_back(acts.substr(ap, comma == std::string::npos ? std::string::npos : comma - ap));
              if (comma == std::string::npos)
                break;
              ap = comma + 1;
            }
            access.push_back({{"type", v.substr(0, c1)}, {"name", v.substr(c1 + 1, c2 - c1 - 1)},
                              {"actions", actions}});
          }
        }
      }
      if (amp == std::string::npos)
        break;
      pos = amp + 1;
    }
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    nlohmann::json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", {B64(cert_der, false)}}};
    nlohmann::json claims = {{"iss", "kiln-test-issuer"}, {"sub", user}, {"aud", service},
                             {"exp", now + 600},          {"nbf", now - 60}, {"iat", now},
                             {"jti", std::to_string(now) + "-" + std::to_string(issued.load())},
                             {"access", access}};
    std::string signing = B64(header.dump(), true) + "." + B64(claims.dump(), true);
    std::string jwt = signing + "." + B64(Sign(signing), true);
    ++issued;
    std::string body = nlohmann::json({{"token", jwt}, {"expires_in", 600}}).dump();
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

  void Serve() {
    for (int fd; (fd = AcceptUntil(listen_fd, stop)) >= 0;) {
      std::string head, body;
      if (ReadRequest(fd, &head, &body))
        SendAll(fd, Reply(head));
      ::close(fd);
    }
  }
};

// ------------------------------------------------------------ registry

std::string RegistryServer::StartTokenIssuer(const std::string& user, const std::string& password) {
  issuer_ = std::make_unique<TokenIssuer>();
  issuer_->user = user;
  issuer_->password = password;
  std::string key = JoinPath(dir(), "token.key"), crt = JoinPath(dir(), "token.crt"),
              der = JoinPath(dir(), "token.der");
  auto r = Run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                crt, "-days", "2", "-subj", "/CN=kiln-token-issuer"});
  if (r.exit_code != 0)
    return "openssl (token key): " + r.err;
  r = Run({"openssl", "x509", "-in", crt, "-outform", "der", "-out", der});
  if (r.exit_code != 0)
    return "openssl (der): " + r.err;
  issuer_->cert_der = *ReadFile(der);
  FILE* f = std::fopen(key.c_str(), "r");
  if (!f)
    return "cannot open token key";
  issuer_->key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!issuer_->key)
    return "cannot read token key";
  issuer_->listen_fd = ListenLoopback(&issuer_->port);
  issuer_->thread = std::thread([this] { issuer_->Serve(); });
  return "";
}

std::string RegistryServer::Start(RegistryMode mode, const std::string& user,
                                  const std::string& password) {
  if (!PathExists("/usr/bin/docker-registry"))
    return "docker-registry is not installed (apt-get install docker-registry)";
  mode_ = mode;
  auto d = TempDir::Create("kiln-registry-");
  if (!d)
    return d.error().message();
  dir_ = std::make_unique<TempDir>(std::move(*d));
  ::chmod(dir().c_str(), 0755);  // the unprivileged test user reads certs/
  // The token issuer listens first: FreePort() closes the port it found, so
  // an issuer bound after it could be given that same port, docker-registry
  // would then fail to bind, and WaitForPort() would find the issuer there
  // (kiln login then saw the issuer's 401 without a challenge).
  if (mode == RegistryMode::kToken) {
    if (auto why = StartTokenIssuer(user, password); !why.empty())
      return why;
  }
  port_ = FreePort();
  std::string config = "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                       "storage:\n  filesystem:\n    rootdirectory: " + JoinPath(dir(), "data") +
                       "\n  delete:\n    enabled: true\n"
                       "http:\n  addr: 127.0.0.1:" + std::to_string(port_) + "\n";
  if (mode == RegistryMode::kTls) {
    std::string ext = JoinPath(dir(), "san.ext");
    (void)WriteFileAtomic(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    std::string ca_key = JoinPath(dir(), "ca.key"), ca_crt = JoinPath(dir(), "ca.crt"),
                key = JoinPath(dir(), "server.key"), csr = JoinPath(dir(), "server.csr"),
                crt = JoinPath(dir(), "server.crt");
    std::vector<std::vector<std::string>> cmds = {
        {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
         "-days", "2", "-subj", "/CN=kiln-test-ca"},
        {"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
         "/CN=127.0.0.1"},
        {"openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext}};
    for (const auto& c : cmds) {
      auto r = Run(c);
      if (r.exit_code != 0)
        return "openssl: " + r.err;
    }
    (void)MakeDirs(cert_dir());
    ::chmod(cert_dir().c_str(), 0755);
    (void)WriteFileAtomic(JoinPath(cert_dir(), "ca.crt"), *ReadFile(ca_crt), 0644);
    config += "  tls:\n    certificate: " + crt + "\n    key: " + key + "\n";
  }
  if (mode == RegistryMode::kHtpasswd) {
    auto r = Run({"htpasswd", "-Bbn", user, password});
    if (r.exit_code != 0)
      return "htpasswd: " + r.err;
    std::string file = JoinPath(dir(), "htpasswd");
    (void)WriteFileAtomic(file, r.out);
    config += "auth:\n  htpasswd:\n    realm: kiln-test\n    path: " + file + "\n";
  }
  if (mode == RegistryMode::kToken) {
    config += "auth:\n  token:\n    realm: http://127.0.0.1:" + std::to_string(issuer_->port) +
              "/token\n    service: kiln-test\n    issuer: kiln-test-issuer\n    rootcertbundle: " +
              JoinPath(dir(), "token.crt") + "\n";
  }
  std::string config_path = JoinPath(dir(), "config.yml");
  (void)WriteFileAtomic(config_path, config);
  std::string log = JoinPath(dir(), "registry.log");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  char* argv[] = {const_cast<char*>("/usr/bin/docker-registry"), const_cast<char*>("serve"),
                  config_path.data(), nullptr};
  int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return std::string("spawn docker-registry: ") + std::strerror(rc);
  if (!WaitForPort(port_, 20000)) {
    auto text = ReadFile(log);
    return "docker-registry did not start: " + (text ? *text : std::string());
  }
  return "";
}

RegistryServer::RegistryServer() = default;

RegistryServer::~RegistryServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 60; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  issuer_.reset();
}

// ------------------------------------------------------------ fault proxy

FaultProxy::FaultProxy(int upstream_port) : upstream_(upstream_port) {
  listen_fd_ = ListenLoopback(&port_);
  thread_ = std::thread([this] { Serve(); });
}

FaultProxy::~FaultProxy() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
  for (auto& w : workers_)
    if (w.joinable())
      w.join();
  ::close(listen_fd_);
}

void FaultProxy::Add(Fault f) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(std::move(f));
}

int FaultProxy::pending() {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& f : faults_)
    n += f.times;
  return n;
}

std::vector<std::string> FaultProxy::log() {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

void FaultProxy::Serve() {
  for (int fd; (fd = AcceptUntil(listen_fd_, stop_)) >= 0;) {
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, fd] {
      Handle(fd);
      ::close(fd);
    });
  }
}

void FaultProxy::Handle(int fd) {
  // Keep-alive: serve requests on this connection until the client closes
  // it or a fault ends it.
  for (;;) {
    std::string head, body;
    if (!ReadRequest(fd, &head, &body))
      return;
    std::string method = head.substr(0, head.find(' '));
    size_t sp = head.find(' ');
    std::string path = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);

    std::optional<Fault> fault;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& f : faults_) {
        if (f.times <= 0 || (!f.method.empty() && f.method != method) ||
            path.find(f.path) == std::string::npos)
          continue;
        --f.times;
        fault = f;
        break;
      }
    }
    auto note = [&](const std::string& what) {
      std::lock_guard<std::mutex> lock(mu_);
      log_.push_back(method + " " + path + " -> " + what);
    };
    if (fault && fault->kind == Fault::kStatus) {
      std::string b = R"({"errors":[{"code":"UNAVAILABLE","message":"injected by the test proxy"}]})";
      std::string resp = "HTTP/1.1 " + std::to_string(fault->status) + " Injected\r\n" +
                         "Content-Type: application/json\r\nContent-Length: " + std::to_string(b.size()) +
                         "\r\n" +
                         (fault->retry_after > 0 ? "Retry-After: " + std::to_string(fault->retry_after) + "\r\n"
                                                 : std::string()) +
                         "\r\n" + (method == "HEAD" ? std::string() : b);
      SendAll(fd, resp);
      note(std::to_string(fault->status) + " (injected)");
      continue;
    }
    // Forward on a fresh upstream connection that closes after the reply,
    // so the whole response can be read to EOF.
    std::string fwd = head;
    {
      std::string lower = fwd;
      for (auto& ch : lower)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      auto p = lower.find("\r\nconnection:");
      if (p != std::string::npos) {
        auto e = fwd.find("\r\n", p + 2);
        fwd.erase(p, e - p);
      }
      fwd.insert(fwd.size() - 2, "Connection: close\r\n");
    }
    int up = ConnectLoopback(upstream_);
    if (up < 0)
      return;
    SendAll(up, fwd + body);
    std::string resp = ReadToEof(up);
    ::close(up);
    size_t hend = resp.find("\r\n\r\n");
    if (hend == std::string::npos)
      return;
    std::string rhead = resp.substr(0, hend + 4);
    std::string rbody = resp.substr(hend + 4);
    // The upstream said "Connection: close"; our client may keep the
    // connection open, so drop that header.
    {
      std::string lower = rhead;
      for (auto& ch : lower)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      auto p = lower.find("\r\nconnection: close");
      if (p != std::string::npos)
        rhead.erase(p, 19);
    }
    std::string status = rhead.substr(9, 3);
    if (!fault) {
      note(status);
      if (!SendAll(fd, rhead + rbody))
        return;
      continue;
    }
    switch (fault->kind) {
      case Fault::kCorrupt:
        if (!rbody.empty())
          rbody[rbody.size() / 2] = static_cast<char>(rbody[rbody.size() / 2] ^ 0x5a);
        note(status + " (corrupted)");
        SendAll(fd, rhead + rbody);
        continue;
      case Fault::kReset: {
        SendAll(fd, rhead + rbody.substr(0, std::min(fault->after, rbody.size())));
        linger l{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        note(status + " (reset after " + std::to_string(fault->after) + " bytes)");
        return;
      }
      case Fault::kTruncate:
        SendAll(fd, rhead + rbody.substr(0, std::min(fault->after, rbody.size())));
        ::shutdown(fd, SHUT_WR);
        note(status + " (truncated at " + std::to_string(fault->after) + " bytes)");
        return;
      case Fault::kSlow: {
        note(status + " (slow)");
        if (!SendAll(fd, rhead))
          return;
        for (size_t off = 0; off < rbody.size(); off += 65536) {
          std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
          if (!SendAll(fd, std::string_view(rbody).substr(off, 65536)))
            return;
        }
        continue;
      }
      case Fault::kStatus:
        break;
    }
  }
}

}  // namespace kiln::registry::test
