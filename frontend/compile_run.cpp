// The compiler: RUN (its --mount specs: bind, cache, tmpfs, secret, ssh;
// --network, --security) into a Step.
#include <algorithm>
#include <map>
#include <set>

#include "compile_internal.h"

namespace kiln::frontend::compile_internal {

// ---------------------------------------------------------------- RUN

namespace {
// A secret or ssh mount is a read-only file owned by root with MODE unless
// the mount's options say otherwise (BuildKit's defaults).
void DefaultReadOnlyFile(RunMount& m, unsigned mode) {
  if (!m.mode)
    m.mode = mode;
  if (!m.uid)
    m.uid = 0;
  if (!m.gid)
    m.gid = 0;
  m.read_only = true;
}
}  // namespace

Expected<RunMount> Compiler::ParseMount(StageInfo& st, const ImageState& img, const EnvLookup& env,
                                        const Instruction& ins, const std::string& spec, int index,
                                        int ssh_count) {
  auto fail = [&](const std::string& why) { return At(ins, "RUN --mount=" + spec + ": " + why); };
  auto fields = SplitMountFields(spec);
  if (!fields)
    return Wrap(ins, fields.error());
  RunMount m;
  std::string type = "bind";
  for (const MountField& f : *fields)
    if (f.key == "type") {  // expanded like every other value (BuildKit)
      auto v = ExpandWord(f.value, env, Opts());
      if (!v)
        return Wrap(ins, v.error());
      type = Lower(*v);
    }
  static const std::map<std::string, MountType> kTypes = {{"bind", MountType::kBind},
                                                          {"cache", MountType::kCache},
                                                          {"tmpfs", MountType::kTmpfs},
                                                          {"secret", MountType::kSecret},
                                                          {"ssh", MountType::kSsh}};
  auto t = kTypes.find(type);
  if (t == kTypes.end())
    return fail("unsupported mount type \"" + type + "\" (want bind, cache, tmpfs, secret or ssh)");
  m.type = t->second;
  static const std::map<std::string, std::set<std::string>> kAllowed = {
      {"bind", {"type", "from", "source", "target", "readonly", "readwrite"}},
      {"cache", {"type", "from", "source", "target", "readonly", "readwrite", "id", "sharing", "mode", "uid", "gid"}},
      {"tmpfs", {"type", "target", "size"}},
      {"secret", {"type", "target", "id", "mode", "uid", "gid", "required", "env"}},
      {"ssh", {"type", "target", "id", "mode", "uid", "gid", "required"}},
  };
  static const std::map<std::string, std::string> kAliases = {
      {"src", "source"}, {"dst", "target"}, {"destination", "target"}, {"ro", "readonly"}, {"rw", "readwrite"}};
  bool read_only_set = false;
  for (const MountField& f : *fields) {
    std::string key = f.key;
    if (auto a = kAliases.find(key); a != kAliases.end())
      key = a->second;
    static const std::set<std::string> kKnown = {"type", "from", "source", "target", "readonly", "readwrite", "id",
                                                 "sharing", "mode", "uid", "gid", "required", "env", "size"};
    if (!kKnown.count(key)) {
      std::string near = lex::Suggest(f.key, {"type", "from", "source", "target", "readonly", "readwrite", "id",
                                              "sharing", "mode", "uid", "gid", "required", "env", "size"});
      return fail("unexpected key '" + f.key + "'" + (near.empty() ? "" : " (did you mean " + near + "?)"));
    }
    if (!kAllowed.at(type).count(key))
      return fail("option '" + f.key + "' is not valid for a type=" + type + " mount");
    if (key == "type" || key == "from")
      continue;  // from: resolved with the stage references
    bool is_bool = key == "readonly" || key == "readwrite" || key == "required";
    if (!f.has_value && !is_bool)
      return fail("option '" + f.key + "' needs a value");
    std::string value;
    if (f.has_value) {
      auto v = ExpandWord(f.value, env, Opts());
      if (!v)
        return Wrap(ins, v.error());
      value = *v;
    }
    if (is_bool) {
      bool b = true;
      if (f.has_value && !ParseGoBool(value, &b))
        return fail("option '" + f.key + "': invalid boolean \"" + value + "\"");
      if (key == "readonly") {
        m.read_only = b;
        read_only_set = true;
      } else if (key == "readwrite") {
        m.read_only = !b;
        read_only_set = true;
      } else {
        m.required = b;
      }
    } else if (key == "source") {
      m.source = value;
    } else if (key == "target") {
      m.target = value;
    } else if (key == "id") {
      m.id = value;
    } else if (key == "env") {
      m.env = value;
    } else if (key == "sharing") {
      static const std::map<std::string, CacheSharing> kSharing = {
          {"shared", CacheSharing::kShared}, {"private", CacheSharing::kPrivate}, {"locked", CacheSharing::kLocked}};
      auto it = kSharing.find(value);
      if (it == kSharing.end())
        return fail("invalid sharing \"" + value + "\" (want shared, private or locked)");
      m.sharing = it->second;
    } else if (key == "mode") {
      if (value.empty() || value.size() > 5 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '7'; }))
        return fail("invalid mode \"" + value + "\" (want octal, e.g. 0755)");
      uint32_t mode = 0;
      for (char c : value)
        mode = mode * 8 + static_cast<uint32_t>(c - '0');
      if (mode > 07777)
        return fail("invalid mode \"" + value + "\"");
      m.mode = mode;
    } else if (key == "uid" || key == "gid") {
      if (!IsDigits(value) || value.size() > 10)
        return fail("invalid " + key + " \"" + value + "\"");
      (key == "uid" ? m.uid : m.gid) = std::stoll(value);
    } else if (key == "size") {
      auto size = ParseByteSize(value);
      if (!size)
        return fail(size.error().message());
      m.size = *size;
    }
  }
  if (auto it = st.refs.find({&ins, index}); it != st.refs.end()) {
    CopySource src = it->second;
    if (src.kind == CopySource::Kind::kStage)
      src.stage = stages_[src.stage].graph_index;
    m.from = src;
  } else {
    for (const MountField& f : *fields) {
      if (f.key != "from")
        continue;
      // Only triggers of a base image get here (their references were not
      // collected up front).
      KILN_ASSIGN_OR_RETURN(CopySource src, ResolveFrom(ins, "RUN --mount from", f.value, st.source_index));
      KILN_TRY(CheckLateReference(st, src, "ONBUILD RUN --mount from=" + f.value, ins.start_line));
      if (src.kind == CopySource::Kind::kStage)
        src.stage = stages_[src.stage].graph_index;
      m.from = src;
    }
  }
  if (!m.target.empty())
    m.target = ResolvePath(img.workdir, m.target);
  switch (m.type) {
    case MountType::kBind:
    case MountType::kCache:
    case MountType::kTmpfs:
      if (m.target.empty())
        return fail("a type=" + type + " mount needs a target");
      if (m.type == MountType::kBind && !read_only_set)
        m.read_only = true;
      if (m.type != MountType::kBind && !read_only_set)
        m.read_only = false;
      if (m.type == MountType::kCache) {
        if (m.id.empty())
          m.id = m.target;
        if (!m.mode)
          m.mode = 0755;
        if (!m.uid)
          m.uid = 0;
        if (!m.gid)
          m.gid = 0;
      }
      break;
    case MountType::kSecret:
      if (m.id.empty() && m.target.empty())
        return fail("a type=secret mount needs an id or a target");
      if (m.id.empty())
        m.id = m.target.substr(m.target.rfind('/') + 1);
      if (m.target.empty() && m.env.empty())
        m.target = "/run/secrets/" + m.id;
      DefaultReadOnlyFile(m, 0400);
      break;
    case MountType::kSsh:
      if (m.id.empty())
        m.id = "default";
      if (m.target.empty())
        m.target = "/run/buildkit/ssh_agent." + std::to_string(ssh_count);
      DefaultReadOnlyFile(m, 0600);
      break;
  }
  return m;
}

Status Compiler::CheckLateReference(StageInfo& st, const CopySource& src, const std::string& what, int line) {
  if (src.kind != CopySource::Kind::kStage)
    return Ok();
  if (stages_[src.stage].graph_index < 0)
    return At(line, what + ": stage \"" + stages_[src.stage].display +
                        "\" is not built before this one (a base image's ONBUILD may only use earlier stages)");
  st.edges.push_back({src.stage, line});
  return Ok();
}

Status Compiler::DispatchRun(StageInfo& st, ImageState& img, ArgScope& args, const Instruction& ins,
                             const Flags& flags, Step& step) {
  RunStep r;
  const EnvLookup env = StageLookup(img, args);
  if (flags.Has("network")) {
    r.network = flags.Get("network");
    if (r.network != "default" && r.network != "none" && r.network != "host")
      return At(ins, "RUN --network=" + r.network + ": must be default, none or host");
  }
  if (flags.Has("security")) {
    r.security = flags.Get("security");
    if (r.security != "sandbox" && r.security != "insecure")
      return At(ins, "RUN --security=" + r.security + ": must be sandbox or insecure");
  }
  auto mounts = flags.GetList("mount");
  int ssh_count = 0;
  for (size_t i = 0; i < mounts.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(RunMount m, ParseMount(st, img, env, ins, mounts[i], static_cast<int>(i), ssh_count));
    if (m.type == MountType::kSsh)
      ++ssh_count;
    r.mounts.push_back(std::move(m));
  }
  if (ins.args.empty() && ins.heredocs.empty())
    return At(ins, "RUN requires at least one argument");
  if (ins.json_form) {
    r.argv = ins.args;
    r.command = Join(ins.args, " ");
  } else {
    r.shell_form = true;
    r.command = Join(ins.args, " ");
    std::string_view trimmed = r.command;
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t'))
      trimmed.remove_prefix(1);
    while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t'))
      trimmed.remove_suffix(1);
    r.argv = img.shell;
    if (ins.heredocs.empty()) {
      r.argv.push_back(r.command);
    } else if (ins.heredocs.size() == 1 && trimmed.find(' ') == std::string_view::npos &&
               HeredocMarkerName(trimmed) == ins.heredocs[0].name) {
      // RUN <<EOF: the heredoc is the script; with a #! line it is run as a
      // file (BuildKit writes it to /dev/pipes/<name>).
      const Heredoc& h = ins.heredocs[0];
      std::string data = h.chomp ? ChompHeredoc(h.content) : h.content;
      if (data.rfind("#!", 0) == 0) {
        std::string path = "/dev/pipes/" + h.name;
        r.files.emplace_back(path, data);
        r.argv = {path};
      } else {
        r.argv.push_back(data);
      }
    } else {
      // The whole command line with the heredocs appended goes to the shell.
      std::string script = r.command;
      for (const Heredoc& h : ins.heredocs)
        script += "\n" + h.content + h.name;
      r.argv.push_back(script);
    }
    for (const Heredoc& h : ins.heredocs)
      r.heredocs.push_back({h.name, h.content, h.expand, h.file_descriptor});
  }
  r.env = img.env.ToList();
  std::vector<std::string> history_args;
  for (const auto& [k, v] : args.vars) {
    if (!v)
      continue;
    history_args.push_back(k + "=" + *v);
    if (!img.env.Has(k))
      r.args.push_back(k + "=" + *v);
  }
  // A proxy --build-arg, in any letter case, reaches RUN in both spellings
  // (BuildKit: HTTP_PROXY and http_proxy, ...; of several spellings given,
  // the last in sorted order wins). A name the step already has as ENV or
  // declared ARG keeps that value.
  for (size_t i = 0; i + 1 < std::size(kProxyArgs); i += 2) {
    const std::string upper = kProxyArgs[i], lower = kProxyArgs[i + 1];
    std::optional<std::string> value;
    for (const auto& [name, v] : opts_.build_args)  // sorted, as BuildKit
      if (Lower(name) == lower) {
        value = v;
        consumed_.insert(name);
      }
    if (!value || value->empty())
      continue;
    for (const std::string& name : {upper, lower})
      if (!args.Declared(name) && !img.env.Has(name))
        step.proxy_env.push_back(name + "=" + *value);
  }
  r.workdir = img.workdir;
  r.user = img.user;
  std::string created = "RUN ";
  if (!history_args.empty())
    created += "|" + std::to_string(history_args.size()) + " " + Join(history_args, " ") + " ";
  created += Join(r.argv, " ") + " # buildkit";
  step.created_by = created;
  step.empty_layer = false;
  step.op = std::move(r);
  return Ok();
}

}  // namespace kiln::frontend::compile_internal
