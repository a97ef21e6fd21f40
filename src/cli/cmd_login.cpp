// kiln login: checks credentials against a registry's /v2/ endpoint and
// stores them in the auth file (mode 0600). See docs/registry.md.
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli/cli.h"
#include "kiln/fs.h"
#include "kiln/registry.h"

namespace kiln::cli {

namespace {

struct LoginFlags {
  std::string username;
  std::string password;
  bool password_stdin = false;
  std::string authfile;
  bool tls_verify = true;
  std::string cert_dir;
  std::string registry;
};

// "https://reg.example:5000/v1/" -> "reg.example:5000".
std::string NormalizeRegistry(const std::string& text) {
  std::string r = registry::NormalizeKey(text);
  if (r == "index.docker.io" || r == "registry-1.docker.io")
    r = "docker.io";
  return r;
}

Expected<std::string> Prompt(const char* what, bool echo) {
  if (!::isatty(STDIN_FILENO))
    return Error(Errc::kInvalidInput, std::string(what) +
                                          " required: stdin is not a terminal (use -u, -p or "
                                          "--password-stdin)");
  std::fprintf(stderr, "%s: ", what);
  std::fflush(stderr);
  termios old{};
  bool restore = false;
  if (!echo && ::tcgetattr(STDIN_FILENO, &old) == 0) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    restore = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  std::string line;
  std::getline(std::cin, line);
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fprintf(stderr, "\n");
  }
  return line;
}

int RunLogin(const LoginFlags& f) {
  std::string registry = NormalizeRegistry(f.registry);
  if (registry.empty())
    return ReportError(Error(Errc::kInvalidInput, "login: no registry given"));
  if (f.password_stdin && !f.password.empty())
    return ReportError(Error(Errc::kInvalidInput, "login: -p and --password-stdin are exclusive"));
  registry::Credentials creds;
  creds.username = f.username;
  if (creds.username.empty()) {
    auto u = Prompt("Username", true);
    if (!u)
      return ReportError(u.error());
    creds.username = *u;
  }
  if (f.password_stdin) {
    auto all = ReadAll(STDIN_FILENO, size_t(1) << 20);
    if (!all)
      return ReportError(std::move(all).error().WithContext("login: read password from stdin"));
    creds.password = *all;
    while (!creds.password.empty() &&
           (creds.password.back() == '\n' || creds.password.back() == '\r'))
      creds.password.pop_back();
  } else if (!f.password.empty()) {
    creds.password = f.password;
  } else {
    auto p = Prompt("Password", false);
    if (!p)
      return ReportError(p.error());
    creds.password = *p;
  }
  if (creds.username.empty() || creds.password.empty())
    return ReportError(Error(Errc::kInvalidInput, "login: username and password must not be empty"));

  registry::ClientOptions options;
  options.tls_verify = f.tls_verify;
  options.cert_dir = f.cert_dir;
  options.authfile = f.authfile;
  options.credentials = creds;
  auto client = registry::RegistryClient::Create(registry, options);
  if (!client)
    return ReportError(std::move(client).error().WithContext("login " + registry));
  if (auto s = (*client)->Ping(); !s)
    return ReportError(std::move(s).error());
  auto path = registry::StoreCredentials(registry, creds, f.authfile);
  if (!path)
    return ReportError(std::move(path).error().WithContext("login " + registry));
  std::printf("Login Succeeded!\n");
  return 0;
}

}  // namespace

void AddLoginCommand(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<LoginFlags>();
  auto* cmd = app.add_subcommand("login", "log in to a registry (checks the credentials, then stores them)");
  cmd->add_option("-u,--username", flags->username, "user name (prompted for when absent)");
  cmd->add_option("-p,--password", flags->password,
                  "password (visible in the process list: prefer --password-stdin)");
  cmd->add_flag("--password-stdin", flags->password_stdin, "read the password from stdin");
  cmd->add_option("--authfile", flags->authfile,
                  "auth file to write (default: the first of $REGISTRY_AUTH_FILE, "
                  "$XDG_RUNTIME_DIR/containers/auth.json, ... that is writable)");
  cmd->add_flag("--tls-verify{true}", flags->tls_verify,
                "verify TLS certificates; =false also allows plain HTTP (default true)");
  cmd->add_option("--cert-dir", flags->cert_dir,
                  "directory with CA certificates (*.crt) and a client pair (*.cert, *.key)");
  cmd->add_option("registry", flags->registry, "registry host[:port]")->required();
  SetAction(cmd, ctx, [flags] { return RunLogin(*flags); });
}

}  // namespace kiln::cli
