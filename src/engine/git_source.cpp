// A git repository as a build source (git_source.h): Debian's git, run by
// this process with a clean configuration (no system or user config, no
// templates or hooks, fsck of every object), never prompting.
#include "engine/git_source.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "kiln/fs.h"
#include "kiln/keyvalue.h"
#include "kiln/process.h"

namespace kiln::engine {

namespace {

bool IsHttpUrl(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

bool IsHex(const std::string& s, size_t min, size_t max) {
  if (s.size() < min || s.size() > max)
    return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c)))
      return false;
  return true;
}

/// A remote on this machine: git may read it (and its submodules may be on
/// it too); a remote elsewhere never makes git read a local path.
bool IsLocalRemote(const std::string& remote) { return remote.rfind("file://", 0) == 0; }

/// Every ".git" under `root` (the checkout's and the submodules' gitlink
/// files; git never checks out a path named .git), symlinks not followed.
Status RemoveGitDirs(const std::string& root) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->path().filename() == ".git") {
      found.push_back(it->path().string());
      if (it->is_directory(ec) && !it->is_symlink(ec))
        it.disable_recursion_pending();
    }
  }
  if (ec)
    return Error(Errc::kFailed, "walk " + root + ": " + ec.message());
  for (const auto& p : found)
    KILN_TRY(RemoveAll(p));
  return Ok();
}

}  // namespace

bool IsGitUrl(const std::string& s) {
  return s.rfind("git@", 0) == 0 || s.rfind("git://", 0) == 0 ||
         ((IsHttpUrl(s) || s.rfind("ssh://", 0) == 0 || s.rfind("file://", 0) == 0) &&
          s.find(".git") != std::string::npos);
}

GitSource ParseGitSource(const std::string& src) {
  GitSource g;
  size_t hash = src.find('#');
  g.remote = src.substr(0, hash);
  if (hash != std::string::npos) {
    std::string frag = src.substr(hash + 1);
    size_t colon = frag.find(':');
    g.ref = frag.substr(0, colon);
    if (colon != std::string::npos)
      g.subdir = frag.substr(colon + 1);
  }
  return g;
}

Expected<std::string> RunGit(const std::vector<std::string>& args, const std::string& scratch,
                             const std::string& what, const GitOptions& options) {
  std::vector<std::string> argv = {"/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=" + scratch,
                                   "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
                                   "GIT_ASKPASS=/bin/false", "LC_ALL=C"};
  if (!options.ssh_auth_sock.empty())
    argv.push_back("SSH_AUTH_SOCK=" + options.ssh_auth_sock);
  argv.push_back(std::string("GIT_SSH_COMMAND=ssh ") +
                 (options.user_ssh_config ? "" : "-F /dev/null -o IdentityFile=none ") +
                 "-o BatchMode=yes -o StrictHostKeyChecking=accept-new "
                 "-o 'UserKnownHostsFile=" + JoinPath(scratch, "known_hosts") + " ~/.ssh/known_hosts'");
  for (const char* proxy : {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})
    if (const char* v = std::getenv(proxy))
      argv.push_back(std::string(proxy) + "=" + v);
  argv.insert(argv.end(), {"git", "-c", "core.hooksPath=/dev/null", "-c", "init.templateDir=", "-c",
                           "transfer.fsckObjects=true", "-c", "core.fsmonitor=false", "-c",
                           "advice.detachedHead=false"});
  argv.insert(argv.end(), args.begin(), args.end());
  CaptureOptions co;  // stdin: an empty pipe
  auto run = RunCaptured(argv, co);
  if (!run)
    return std::move(run).error().WithContext(what + ": run git (Debian package git)");
  int status = run->status;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string msg = std::move(run->err);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    // git's first "fatal:" line says why (a submodule's comes before
    // "Failed to clone ..."), else its last line.
    if (auto f = msg.find("fatal: "); f != std::string::npos && (f == 0 || msg[f - 1] == '\n')) {
      std::string before = msg.substr(0, f == 0 ? 0 : f - 1);  // ssh's reason comes before git's line
      msg = msg.substr(f, msg.find('\n', f) == std::string::npos ? std::string::npos : msg.find('\n', f) - f);
      if (msg.rfind("fatal: Could not read from remote repository", 0) == 0 && !before.empty())
        msg = before.substr(before.rfind('\n') == std::string::npos ? 0 : before.rfind('\n') + 1) + " (" + msg + ")";
    } else if (auto nl = msg.rfind('\n'); nl != std::string::npos)
      msg = msg.substr(nl + 1);
    if (WEXITSTATUS(status) == 127)
      msg = "git is not installed (Debian package git)";
    return Error(Errc::kFailed, what + ": " + (msg.empty() ? "git failed" : msg));
  }
  return std::move(run->out);
}

Expected<std::string> ResolveGitRef(const GitSource& g, const std::string& scratch, const std::string& what,
                                    const GitOptions& options) {
  if (g.remote.empty() || g.remote[0] == '-' || g.ref.find("..") != std::string::npos ||
      (!g.ref.empty() && g.ref[0] == '-'))
    return Error(Errc::kInvalidInput, what + ": not a git source (REMOTE[#REF[:SUBDIR]])");
  if (IsHex(g.ref, 40, 40))
    return g.ref;
  std::string want = g.ref.empty() ? "HEAD" : g.ref;
  KILN_ASSIGN_OR_RETURN(std::string refs,
                        RunGit({"-c", std::string("protocol.file.allow=") + (IsLocalRemote(g.remote) ? "always" : "never"),
                                "ls-remote", "--", g.remote, want},
                               scratch, what, options));
  // The peeled commit of an annotated tag, else a tag, else a branch, else the name as given.
  std::map<std::string, std::string> by_ref;
  for (const auto& line : SplitList(refs, '\n')) {
    size_t tab = line.find('\t');
    if (tab != std::string::npos)
      by_ref[line.substr(tab + 1)] = line.substr(0, tab);
  }
  std::string commit;
  for (const std::string& r : {"refs/tags/" + want + "^{}", "refs/tags/" + want, "refs/heads/" + want, want}) {
    if (auto it = by_ref.find(r); it != by_ref.end()) {
      commit = it->second;
      break;
    }
  }
  if (commit.empty())
    return Error(Errc::kNotFound, what + ": no branch or tag " + want + " in " + g.remote);
  if (!IsHex(commit, 40, 64))
    return Error(Errc::kFailed, what + ": git gave no commit for " + want);
  return commit;
}

Expected<std::string> CheckoutGitCommit(const GitSource& g, const std::string& commit, const std::string& scratch,
                                        const std::string& what, const GitOptions& options) {
  std::string dir = JoinPath(scratch, "git-checkout");
  std::string tmp = JoinPath(scratch, "git-tmp");
  KILN_TRY(MakeDirs(tmp));
  // file:// only for a remote on this machine: a submodule of a remote
  // elsewhere never reads this machine's files.
  const std::string file_allow =
      std::string("protocol.file.allow=") + (IsLocalRemote(g.remote) ? "always" : "never");
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-C", dir, "-c", file_allow});
    return RunGit(args, tmp, what, options);
  };
  KILN_TRY(RunGit({"init", "-q", "--", dir}, tmp, what, options));
  // origin: the remote relative submodule URLs (../lib.git) resolve against.
  KILN_TRY(git({"remote", "add", "origin", g.remote}));
  // By name first (every server allows it), then by commit id; a commit no
  // ref names at its tip needs the whole history.
  std::vector<std::vector<std::string>> tries;
  if (!g.ref.empty() && !IsHex(g.ref, 40, 40))
    tries.push_back({"fetch", "-q", "--depth=1", "--no-tags", "--", g.remote, "+" + g.ref + ":refs/kiln/fetched"});
  else if (g.ref.empty())
    tries.push_back({"fetch", "-q", "--depth=1", "--no-tags", "--", g.remote, "+HEAD:refs/kiln/fetched"});
  tries.push_back({"fetch", "-q", "--depth=1", "--no-tags", "--", g.remote, commit});
  tries.push_back({"fetch", "-q", "--tags", "--", g.remote, "+refs/heads/*:refs/remotes/origin/*"});
  Status fetched = Ok();
  for (const auto& t : tries) {
    auto r = git(t);
    if (!r) {
      fetched = std::move(r).error();
      continue;
    }
    if (git({"cat-file", "-e", commit + "^{commit}"})) {
      fetched = Ok();
      break;
    }
    fetched = Error(Errc::kNotFound, what + ": commit " + commit + " not fetched");
  }
  KILN_TRY(fetched);
  KILN_TRY(git({"-c", "core.symlinks=true", "checkout", "-q", "--detach", commit}));
  if (PathExists(JoinPath(dir, ".gitmodules"))) {
    // Submodules, as BuildKit: `submodule update --init --recursive`, at
    // the commits the checkout pins (shallow first; some servers refuse a
    // commit that no ref has at its tip, then the whole history).
    if (!git({"-c", "core.symlinks=true", "submodule", "update", "-q", "--init", "--recursive", "--depth=1"}))
      KILN_TRY(git({"-c", "core.symlinks=true", "submodule", "update", "-q", "--init", "--recursive"}));
  }
  if (!options.keep_git_dir)
    KILN_TRY(RemoveGitDirs(dir));
  return dir;
}

}  // namespace kiln::engine
