// A git repository as a build source (docs/build.md "ADD from git", "Git
// build contexts"): Debian's git run by this process with a clean
// configuration. Used by ADD from git (build_url.cpp) and by the CLI for a
// git build context (`kiln build URL`, `--build-context NAME=URL`).
#pragma once

#include <string>
#include <vector>

#include "kiln/error.h"

namespace kiln::engine {

/// REMOTE[#REF[:SUBDIR]].
struct GitSource {
  std::string remote;
  std::string ref;     // "" = HEAD
  std::string subdir;  // "" = the whole tree
};

/// True when `s` names a git repository as BuildKit decides: git@…, git://…,
/// or an http(s)/ssh/file URL with ".git" in it.
bool IsGitUrl(const std::string& s);
GitSource ParseGitSource(const std::string& s);

struct GitOptions {
  std::string ssh_auth_sock;  // the agent SSH remotes use ("" = none)
  bool keep_git_dir = false;  // keep .git (the top one and the submodules')
  /// SSH remotes: false (ADD from git, named by a Containerfile): only the
  /// agent of --ssh, never the user's ssh config or key files, as BuildKit;
  /// true (a git build context the user named): the user's ssh config and
  /// keys too. Either way never a prompt; host keys from the user's
  /// known_hosts (a changed key is refused), an unknown host accepted for
  /// this fetch only.
  bool user_ssh_config = false;
};

/// Runs git (`args` after git's own options) with a clean configuration
/// (no system/user config, templates or hooks, fsck of every object, never a
/// prompt), HOME and its output files in `scratch`. Its stdout; else an
/// error "WHAT: <git's last line>".
Expected<std::string> RunGit(const std::vector<std::string>& args, const std::string& scratch,
                             const std::string& what, const GitOptions& options);

/// The commit `g.ref` names in `g.remote` (git ls-remote; a full commit id as
/// is): an annotated tag's commit, else a tag, else a branch.
Expected<std::string> ResolveGitRef(const GitSource& g, const std::string& scratch, const std::string& what,
                                    const GitOptions& options);

/// `commit` of `g.remote` checked out into `scratch`/git-checkout, its
/// submodules (recursively, as BuildKit) too; .git dirs removed unless
/// options.keep_git_dir. Returns the checkout's path.
Expected<std::string> CheckoutGitCommit(const GitSource& g, const std::string& commit, const std::string& scratch,
                                        const std::string& what, const GitOptions& options);

}  // namespace kiln::engine
