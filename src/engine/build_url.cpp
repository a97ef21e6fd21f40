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
#include "engine/git_source.h"
#include "kiln/keyvalue.h"
#include "kiln/process.h"

namespace kiln::engine {

namespace build_internal {

namespace {

bool IsHttpUrl(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

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

std::pair<CopyStep, CopyStep> SplitUrlSources(const CopyStep& copy) {
  std::pair<CopyStep, CopyStep> out{copy, copy};
  out.first.sources.clear();
  out.second.sources.clear();
  for (const auto& s : copy.sources)
    (IsHttpUrl(s) || IsGitUrl(s) ? out.first : out.second).sources.push_back(s);
  out.first.heredoc_sources.clear();
  return out;
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
      continue;  // a local source: hashed as the context's (build_cachekey.cpp)
    // `--network none` promises that no step reaches the network (docs/build.md).
    if (opts_.network == NetworkMode::kNone && s.rfind("file://", 0) != 0)
      return Error(Errc::kInvalidInput, Where(step) + ": ADD " + s +
                                            " is not allowed: the build runs with --network none");
    if (IsGitUrl(s)) {
      // The resolved commit is the key (BuildKit): a moved branch misses.
      KILN_ASSIGN_OR_RETURN(std::string commit, ResolveGitCommit(step, copy, s));
      std::string frag = s.find('#') == std::string::npos ? "" : s.substr(s.find('#'));
      inputs.push_back("git " + commit + " " + frag.substr(std::min(frag.size(), frag.find(':'))) +
                       (copy.keep_git_dir ? " keep-git-dir" : "") + " submodules");
      continue;
    }
    KILN_ASSIGN_OR_RETURN(UrlFile f, FetchUrlSource(step, copy, s));
    inputs.push_back("url " + f.digest.str() + " " + f.name + " " + f.last_modified);
  }
  return inputs;
}

Expected<std::vector<UrlCopy>> Builder::MaterializeUrlSources(const Step& step, const CopyStep& copy,
                                                              const std::string& scratch) {
  std::string root = JoinPath(scratch, "url-sources");
  KILN_TRY(MakeDirs(root));
  std::vector<UrlCopy> copies(1);  // [0]: the downloaded files, under root
  copies[0].root = root;
  for (size_t i = 0; i < copy.sources.size(); ++i) {
    std::string dir = JoinPath(root, std::to_string(i));
    KILN_TRY(MakeDirs(dir));
    if (IsGitUrl(copy.sources[i])) {
      // The checkout (its .git only with --keep-git-dir), or SUBDIR of it
      // resolved inside the checkout (a link out of it stays in it): the
      // checkout is that copy's root (one copy per repository, as BuildKit).
      KILN_ASSIGN_OR_RETURN(std::string checkout, CheckoutGit(step, copy, copy.sources[i], dir));
      copies.push_back(UrlCopy{checkout, {"/" + ParseGitSource(copy.sources[i]).subdir}});
      continue;
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
    copies[0].sources.push_back("/" + std::to_string(i) + "/" + f.name);
  }
  if (copies[0].sources.empty())
    copies.erase(copies.begin());
  return copies;
}

}  // namespace build_internal

}  // namespace kiln::engine

// ---------------------------------------------------------------------------
// ADD from a git repository (docs/build.md "ADD from git"): git_source.h.

namespace kiln::engine {

namespace build_internal {

GitOptions Builder::GitOptionsFor(const CopyStep& copy) const {
  GitOptions o;
  if (auto it = opts_.ssh.find("default"); it != opts_.ssh.end())
    o.ssh_auth_sock = it->second;
  o.keep_git_dir = copy.keep_git_dir;
  return o;
}

Expected<std::string> Builder::ResolveGitCommit(const Step& step, const CopyStep& copy, const std::string& src) {
  const std::string where = Where(step) + ": ADD " + src;
  {
    std::lock_guard<std::mutex> lock(url_mu_);
    if (auto it = git_commits_.find(src); it != git_commits_.end())
      return it->second;
  }
  GitSource g = ParseGitSource(src);
  KILN_ASSIGN_OR_RETURN(std::string scratch, store_.MakeTempDir("git-"));
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)RemoveAll(dir); }
  } cleanup{scratch};
  KILN_ASSIGN_OR_RETURN(std::string commit, ResolveGitRef(g, scratch, where, GitOptionsFor(copy)));
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
  return CheckoutGitCommit(ParseGitSource(src), commit, scratch, where, GitOptionsFor(copy));
}

}  // namespace build_internal

}  // namespace kiln::engine
