// ADD from an HTTP(S) URL (docs/build.md "ADD from a URL"): the file is
// fetched through BuildOptions::fetch_url (the CLI's registry HTTP stack)
// into a store blob, verified against --checksum before anything uses it,
// and remembered per URL (ETag, Last-Modified, digest) in a state file, so
// that a rebuild revalidates with a conditional GET and downloads an
// unchanged file's body only once. The step's cache key is the content
// digest (the checksum when given), the file's name and its mtime.
#include <strings.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <cctype>

#include "engine/build_internal.h"
#include "kiln/keyvalue.h"
#include "kiln/process.h"

namespace kiln::engine {

namespace build_internal {

namespace {

bool IsHttpUrl(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

bool IsGitUrl(const std::string& s) {
  return s.rfind("git@", 0) == 0 || s.rfind("git://", 0) == 0 ||
         ((IsHttpUrl(s) || s.rfind("ssh://", 0) == 0 || s.rfind("file://", 0) == 0) && s.find(".git") != std::string::npos);
}

/// An HTTP date (RFC 7231 IMF-fixdate) as seconds since the epoch.
std::optional<int64_t> ParseHttpDate(const std::string& text) {
  struct tm tm = {};
  const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0')
    return std::nullopt;
  return static_cast<int64_t>(::timegm(&tm));
}

/// A safe file name: no '/', not "." or "..", no NUL, at most 255 bytes.
bool SafeName(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.size() <= 255 && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos;
}

/// The name BuildKit gives the file: Content-Disposition's filename, else
/// the last component of the URL's path, else "__unnamed__".
std::string FileNameFor(const std::string& url, const std::string& disposition) {
  auto pos = disposition.find("filename=");
  if (pos != std::string::npos) {
    std::string n = disposition.substr(pos + 9);
    if (auto semi = n.find(';'); semi != std::string::npos)
      n = n.substr(0, semi);
    if (n.size() >= 2 && n.front() == '"' && n.back() == '"')
      n = n.substr(1, n.size() - 2);
    if (SafeName(n))
      return n;
  }
  std::string path = url.substr(url.find("://") + 3);
  path = path.substr(std::min(path.size(), path.find('/')));
  path = path.substr(0, path.find_first_of("?#"));
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  return SafeName(base) ? base : "__unnamed__";
}

}  // namespace

bool CopyHasUrlSource(const CopyStep& copy) {
  for (const auto& s : copy.sources)
    if (IsHttpUrl(s) || IsGitUrl(s))
      return true;
  return false;
}

Expected<UrlFile> Builder::FetchUrlSource(const Step& step, const CopyStep& copy, const std::string& url) {
  const std::string where = Where(step) + ": ADD " + url;
  std::optional<Digest> checksum;
  if (!copy.checksum.empty()) {
    auto d = Digest::Parse(copy.checksum);
    if (!d || d->algorithm() != "sha256")
      return Error(Errc::kInvalidInput, where + ": --checksum=" + copy.checksum + ": want sha256:<64 hex digits>");
    checksum = *d;
  }
  {
    std::lock_guard<std::mutex> lock(url_mu_);
    if (auto it = url_files_.find(url + "\n" + copy.checksum); it != url_files_.end())
      return it->second;
  }
  const std::string record_name = HexName("addurl-", url);
  UrlFile file;
  nlohmann::json record;
  if (auto text = store_.GetStateFile(record_name, 1 << 20)) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_object() && j.value("url", "") == url)
      record = std::move(j);
  }
  std::optional<Digest> known;
  if (record.is_object())
    if (auto d = Digest::Parse(record.value("digest", "")); d && store_.HasBlob(*d))
      known = *d;
  if (checksum && store_.HasBlob(*checksum)) {
    // Pinned and present: no request at all (BuildKit's cache key is the checksum).
    file.digest = *checksum;
    if (known && *known == *checksum) {
      file.last_modified = record.value("last_modified", "");
      file.name = record.value("name", "");
    }
  } else {
    if (!opts_.fetch_url)
      return Error(Errc::kUnsupported, where + ": this build cannot fetch URLs");
    std::vector<std::pair<std::string, std::string>> headers;
    if (known && !checksum) {
      if (!record.value("etag", "").empty())
        headers.emplace_back("If-None-Match", record.value("etag", ""));
      if (!record.value("last_modified", "").empty())
        headers.emplace_back("If-Modified-Since", record.value("last_modified", ""));
    }
    KILN_ASSIGN_OR_RETURN(BlobWriter writer, store_.NewBlobWriter(checksum));
    auto got = opts_.fetch_url(url, headers, writer.fd());
    if (!got)
      return std::move(got).error().WithContext(where);
    if (got->not_modified && known) {
      file.digest = *known;
      file.last_modified = record.value("last_modified", "");
      file.name = record.value("name", "");
    } else {
      // Verified before anything uses it: a wrong --checksum fails here,
      // before the step makes a layer.
      auto desc = writer.Commit("application/octet-stream");
      if (!desc)
        return std::move(desc).error().WithContext(where + (checksum ? ": --checksum" : ""));
      file.digest = desc->digest;
      file.last_modified = got->last_modified;
      file.name = FileNameFor(url, got->content_disposition);
      nlohmann::json r = {{"url", url},        {"etag", got->etag}, {"last_modified", got->last_modified},
                          {"name", file.name}, {"digest", file.digest.str()}};
      (void)store_.PutStateFile(record_name, r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  }
  if (file.name.empty())
    file.name = FileNameFor(url, "");
  std::lock_guard<std::mutex> lock(url_mu_);
  url_files_[url + "\n" + copy.checksum] = file;
  return file;
}

Expected<std::vector<std::string>> Builder::UrlInputs(const Step& step, const CopyStep& copy) {
  std::vector<std::string> inputs;
  for (const auto& s : copy.sources) {
    if (!IsHttpUrl(s) && !IsGitUrl(s))
      return Error(Errc::kUnsupported, Where(step) + ": ADD of a URL together with local sources " + s +
                                           ": give the URL an ADD of its own");
    // `--network none` promises that no step reaches the network (docs/build.md).
    if (opts_.network == NetworkMode::kNone && s.rfind("file://", 0) != 0)
      return Error(Errc::kInvalidInput, Where(step) + ": ADD " + s +
                                            " is not allowed: the build runs with --network none");
    if (IsGitUrl(s)) {
      // The resolved commit is the key (BuildKit): a moved branch misses.
      KILN_ASSIGN_OR_RETURN(std::string commit, ResolveGitCommit(step, copy, s));
      std::string frag = s.find('#') == std::string::npos ? "" : s.substr(s.find('#'));
      inputs.push_back("git " + commit + " " + frag.substr(std::min(frag.size(), frag.find(':'))) +
                       (copy.keep_git_dir ? " keep-git-dir" : ""));
      continue;
    }
    KILN_ASSIGN_OR_RETURN(UrlFile f, FetchUrlSource(step, copy, s));
    inputs.push_back("url " + f.digest.str() + " " + f.name + " " + f.last_modified);
  }
  return inputs;
}

Expected<std::string> Builder::MaterializeUrlSources(const Step& step, const CopyStep& copy,
                                                     const std::string& scratch, std::vector<std::string>* sources) {
  std::string root = JoinPath(scratch, "url-sources");
  KILN_TRY(MakeDirs(root));
  for (size_t i = 0; i < copy.sources.size(); ++i) {
    std::string dir = JoinPath(root, std::to_string(i));
    KILN_TRY(MakeDirs(dir));
    if (IsGitUrl(copy.sources[i])) {
      // The checkout (its .git only with --keep-git-dir), or SUBDIR of it
      // resolved inside the checkout (a link out of it stays in it): the
      // checkout is the copy's root.
      if (copy.sources.size() != 1)
        return Error(Errc::kUnsupported, Where(step) + ": ADD of a git repository together with other sources: "
                                                       "give the repository an ADD of its own");
      KILN_ASSIGN_OR_RETURN(std::string checkout, CheckoutGit(step, copy, copy.sources[i], dir));
      const std::string& src = copy.sources[i];
      std::string frag = src.find('#') == std::string::npos ? "" : src.substr(src.find('#') + 1);
      std::string subdir = frag.find(':') == std::string::npos ? "" : frag.substr(frag.find(':') + 1);
      sources->push_back("/" + subdir);
      return checkout;
    }
    KILN_ASSIGN_OR_RETURN(UrlFile f, FetchUrlSource(step, copy, copy.sources[i]));
    std::string path = JoinPath(dir, f.name);
    KILN_ASSIGN_OR_RETURN(UniqueFd in, store_.OpenBlob(f.digest));
    UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out)
      return Error::FromErrno("create " + path);
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(in.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return Error::FromErrno("read blob " + f.digest.str());
      if (n == 0)
        break;
      KILN_TRY(WriteAll(out.get(), buf, static_cast<size_t>(n)));
    }
    if (::fchmod(out.get(), 0600) != 0)  // Docker's mode for a downloaded file
      return Error::FromErrno("chmod " + path);
    if (auto t = ParseHttpDate(f.last_modified)) {
      struct timespec times[2] = {{static_cast<time_t>(*t), 0}, {static_cast<time_t>(*t), 0}};
      if (::futimens(out.get(), times) != 0)
        return Error::FromErrno("set the mtime of " + path);
    }
    sources->push_back("/" + std::to_string(i) + "/" + f.name);
  }
  return root;
}

}  // namespace build_internal

}  // namespace kiln::engine

// ---------------------------------------------------------------------------
// ADD from a git repository (docs/build.md "ADD from git"): Debian's git,
// run by this process with a clean configuration (no system or user config,
// no templates or hooks, fsck of every object), never prompting.

namespace kiln::engine {

namespace build_internal {

namespace {

struct GitSource {
  std::string remote;
  std::string ref;     // "" = HEAD
  std::string subdir;  // "" = the whole tree
};

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

bool IsHex(const std::string& s, size_t min, size_t max) {
  if (s.size() < min || s.size() > max)
    return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c)))
      return false;
  return true;
}

}  // namespace

Expected<std::string> Builder::RunGit(const std::vector<std::string>& args, const std::string& scratch,
                                      const std::string& what) {
  std::vector<std::string> argv = {"/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=" + scratch,
                                   "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
                                   "GIT_ASKPASS=/bin/false", "LC_ALL=C"};
  if (auto it = opts_.ssh.find("default"); it != opts_.ssh.end())
    argv.push_back("SSH_AUTH_SOCK=" + it->second);
  for (const char* proxy : {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})
    if (const char* v = std::getenv(proxy))
      argv.push_back(std::string(proxy) + "=" + v);
  argv.insert(argv.end(), {"git", "-c", "core.hooksPath=/dev/null", "-c", "init.templateDir=", "-c",
                           "transfer.fsckObjects=true", "-c", "protocol.file.allow=always", "-c",
                           "core.fsmonitor=false", "-c", "advice.detachedHead=false"});
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out_path = JoinPath(scratch, "git.out"), err_path = JoinPath(scratch, "git.err");
  UniqueFd out(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd err(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!out || !err || !null)
    return Error::FromErrno("git output files in " + scratch);
  SpawnOptions so;
  so.fds = {{null.get(), 0}, {out.get(), 1}, {err.get(), 2}};
  auto pid = SpawnArgv(argv, so);
  if (!pid)
    return std::move(pid).error().WithContext(what + ": run git (Debian package git)");
  int status = WaitChild(*pid);
  auto text = ReadFile(out_path, size_t(16) << 20);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    auto e = ReadFile(err_path, 1 << 16);
    std::string msg = e ? *e : "";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    if (auto nl = msg.rfind('\n'); nl != std::string::npos)
      msg = msg.substr(nl + 1);  // git's last line says why
    if (WEXITSTATUS(status) == 127)
      msg = "git is not installed (Debian package git)";
    return Error(Errc::kFailed, what + ": " + (msg.empty() ? "git failed" : msg));
  }
  return text ? *text : std::string();
}

Expected<std::string> Builder::ResolveGitCommit(const Step& step, const CopyStep& copy, const std::string& src) {
  const std::string where = Where(step) + ": ADD " + src;
  {
    std::lock_guard<std::mutex> lock(url_mu_);
    if (auto it = git_commits_.find(src); it != git_commits_.end())
      return it->second;
  }
  GitSource g = ParseGitSource(src);
  if (g.remote.empty() || g.remote[0] == '-' || g.ref.find("..") != std::string::npos || (!g.ref.empty() && g.ref[0] == '-'))
    return Error(Errc::kInvalidInput, where + ": not a git source (REMOTE[#REF[:SUBDIR]])");
  std::string commit;
  if (IsHex(g.ref, 40, 40)) {
    commit = g.ref;
  } else {
    KILN_ASSIGN_OR_RETURN(std::string scratch, store_.MakeTempDir("git-"));
    struct Cleanup {
      std::string dir;
      ~Cleanup() { (void)RemoveAll(dir); }
    } cleanup{scratch};
    std::string want = g.ref.empty() ? "HEAD" : g.ref;
    KILN_ASSIGN_OR_RETURN(std::string refs, RunGit({"ls-remote", "--", g.remote, want}, scratch, where));
    // The peeled commit of an annotated tag, else a tag, else a branch, else the name as given.
    std::map<std::string, std::string> by_ref;
    for (const auto& line : SplitList(refs, '\n')) {
      size_t tab = line.find('\t');
      if (tab != std::string::npos)
        by_ref[line.substr(tab + 1)] = line.substr(0, tab);
    }
    for (const std::string& r : {"refs/tags/" + want + "^{}", "refs/tags/" + want, "refs/heads/" + want, want}) {
      if (auto it = by_ref.find(r); it != by_ref.end()) {
        commit = it->second;
        break;
      }
    }
    if (commit.empty())
      return Error(Errc::kNotFound, where + ": no branch or tag " + want + " in " + g.remote);
  }
  if (!IsHex(commit, 40, 64))
    return Error(Errc::kFailed, where + ": git gave no commit for " + g.ref);
  if (!copy.checksum.empty() && commit.rfind(copy.checksum, 0) != 0)
    return Error(Errc::kInvalidInput, where + ": --checksum=" + copy.checksum + " but " +
                                          (g.ref.empty() ? "HEAD" : g.ref) + " is commit " + commit);
  std::lock_guard<std::mutex> lock(url_mu_);
  git_commits_[src] = commit;
  return commit;
}

Expected<std::string> Builder::CheckoutGit(const Step& step, const CopyStep& copy, const std::string& src,
                                           const std::string& scratch) {
  const std::string where = Where(step) + ": ADD " + src;
  KILN_ASSIGN_OR_RETURN(std::string commit, ResolveGitCommit(step, copy, src));
  GitSource g = ParseGitSource(src);
  std::string dir = JoinPath(scratch, "git-checkout");
  std::string tmp = JoinPath(scratch, "git-tmp");
  KILN_TRY(MakeDirs(tmp));
  KILN_TRY(RunGit({"init", "-q", "--", dir}, tmp, where));
  // By name first (every server allows it), then by commit id; a commit no
  // ref names at its tip needs the whole history.
  std::vector<std::vector<std::string>> tries;
  if (!g.ref.empty() && !IsHex(g.ref, 40, 40))
    tries.push_back({"-C", dir, "fetch", "-q", "--depth=1", "--no-tags", "--", g.remote,
                     "+" + g.ref + ":refs/kiln/fetched"});
  else if (g.ref.empty())
    tries.push_back({"-C", dir, "fetch", "-q", "--depth=1", "--no-tags", "--", g.remote, "+HEAD:refs/kiln/fetched"});
  tries.push_back({"-C", dir, "fetch", "-q", "--depth=1", "--no-tags", "--", g.remote, commit});
  tries.push_back({"-C", dir, "fetch", "-q", "--tags", "--", g.remote, "+refs/heads/*:refs/remotes/origin/*"});
  Status fetched = Ok();
  for (const auto& t : tries) {
    auto r = RunGit(t, tmp, where);
    if (!r) {
      fetched = std::move(r).error();
      continue;
    }
    if (RunGit({"-C", dir, "cat-file", "-e", commit + "^{commit}"}, tmp, where)) {
      fetched = Ok();
      break;
    }
    fetched = Error(Errc::kNotFound, where + ": commit " + commit + " not fetched");
  }
  KILN_TRY(fetched);
  KILN_TRY(RunGit({"-C", dir, "-c", "core.symlinks=true", "checkout", "-q", "--detach", commit}, tmp, where));
  if (!copy.keep_git_dir)
    KILN_TRY(RemoveAll(JoinPath(dir, ".git")));
  return dir;
}

}  // namespace build_internal

}  // namespace kiln::engine
