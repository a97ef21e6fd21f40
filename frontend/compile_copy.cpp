// The compiler: COPY and ADD (local, stage, image, URL and git sources)
// into a Step.
#include <algorithm>
#include <map>
#include <set>

#include "compile_internal.h"

namespace kiln::frontend::compile_internal {
namespace {

bool IsUrl(std::string_view s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

bool IsGitSource(std::string_view s) {
  return s.rfind("git@", 0) == 0 || s.rfind("git://", 0) == 0 ||
         ((IsUrl(s) || s.rfind("ssh://", 0) == 0 || s.rfind("file://", 0) == 0) && s.find(".git") != std::string_view::npos);
}

}  // namespace

Status Compiler::DispatchCopy(StageInfo& st, ImageState& img, const Instruction& ins, const Flags& flags,
                              Step& step, bool is_add, const EnvLookup& env) {
  const std::string KW = is_add ? "ADD" : "COPY";
  CopyStep c;
  c.is_add = is_add;
  if (ins.args.size() < 2)
    return At(ins, KW + " requires at least two arguments, but only " + std::to_string(ins.args.size()) +
                       " was provided: the destination could not be determined");
  if (!ins.json_form && !ins.heredocs.empty()) {
    std::string name = HeredocMarkerName(ins.args.back());
    for (const Heredoc& hd : ins.heredocs)
      if (!name.empty() && hd.name == name)
        return At(ins, KW + " cannot accept a heredoc as a destination");
  }
  std::vector<std::string> written;
  for (size_t i = 0; i + 1 < ins.args.size(); ++i) {
    const std::string& raw = ins.args[i];
    if (!ins.json_form && !ins.heredocs.empty()) {
      std::string name = HeredocMarkerName(raw);
      auto h = std::find_if(ins.heredocs.begin(), ins.heredocs.end(),
                            [&](const Heredoc& hd) { return !name.empty() && hd.name == name; });
      if (h != ins.heredocs.end()) {
        HeredocFile f{h->name, h->chomp ? ChompHeredoc(h->content) : h->content, h->expand, h->file_descriptor};
        if (f.expand) {
          // As BuildKit: quotes are plain text (${X} expands inside them)
          // and the escape token is always the backslash.
          ExpandOptions o = Opts();
          o.skip_quotes = true;
          o.escape = '\\';
          auto v = ExpandWord(f.content, env, o);
          if (!v)
            return Wrap(ins, v.error());
          f.content = *v;
        }
        c.heredoc_sources.push_back(std::move(f));
        written.push_back(raw);
        continue;
      }
    }
    KILN_ASSIGN_OR_RETURN(std::string src, Expand(ins, raw, env));
    if (src.empty())
      return At(ins, KW + " source " + raw + " is empty after expansion");
    if (!is_add && IsUrl(src))
      return At(ins, "COPY " + src + ": source can't be a URL for COPY (use ADD)");
    c.sources.push_back(src);
    written.push_back(src);
  }
  KILN_ASSIGN_OR_RETURN(const std::string dest_written, Expand(ins, ins.args.back(), env));
  // BuildKit: an empty destination is the working directory.
  const std::string dest = dest_written.empty() ? "./" : dest_written;
  bool dir = dest == "." || dest.back() == '/' || (dest.size() >= 2 && dest.substr(dest.size() - 2) == "/.");
  c.dest = ResolvePath(img.workdir, dest);
  if (dir && c.dest != "/")
    c.dest += "/";
  c.workdir = img.workdir;

  if (flags.Has("from")) {
    auto it = st.refs.find({&ins, 0});
    CopySource src;
    if (it != st.refs.end()) {
      src = it->second;
    } else {
      // A trigger from a base image's ONBUILD: resolved only now.
      KILN_ASSIGN_OR_RETURN(src, ResolveFrom(ins, "COPY --from", flags.Get("from"), st.source_index));
      KILN_TRY(CheckLateReference(st, src, "ONBUILD COPY --from=" + flags.Get("from"), step.location.line));
    }
    if (src.kind == CopySource::Kind::kStage)
      src.stage = stages_[src.stage].graph_index;
    c.from = src;
  }
  if (flags.Has("chown")) {
    KILN_ASSIGN_OR_RETURN(c.chown, Expand(ins, flags.Get("chown"), env));
  }
  if (flags.Has("chmod")) {
    KILN_ASSIGN_OR_RETURN(c.chmod, Expand(ins, flags.Get("chmod"), env));
    if (auto s = ValidateChmod(c.chmod); !s)
      return At(ins, KW + " " + s.error().message());
  }
  c.link = flags.GetBool("link");
  c.parents = flags.GetBool("parents");
  for (const std::string& e : flags.GetList("exclude")) {
    KILN_ASSIGN_OR_RETURN(std::string x, Expand(ins, e, env));
    c.excludes.push_back(x);
  }
  if (flags.Has("checksum")) {
    KILN_ASSIGN_OR_RETURN(c.checksum, Expand(ins, flags.Get("checksum"), env));
    for (const auto& s : c.sources)
      if (!IsUrl(s) && !IsGitSource(s))
        return At(ins, "ADD --checksum: only valid for http(s) and git sources, not " + s);
  }
  c.keep_git_dir = flags.GetBool("keep-git-dir");
  if (flags.Has("unpack"))
    c.unpack = flags.GetBool("unpack");
  step.created_by = KW + " " + Join(written, " ") + " " + dest_written + " # buildkit";
  step.empty_layer = false;
  step.op = std::move(c);
  return Ok();
}

}  // namespace kiln::frontend::compile_internal
