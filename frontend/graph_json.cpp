// Canonical JSON of the build graph (include/kiln/graph.h). nlohmann::json
// objects are std::maps, so keys come out sorted; arrays keep IR order.
#include <nlohmann/json.hpp>

#include "kiln/graph.h"

namespace kiln {
namespace {

using nlohmann::json;

json Pairs(const std::vector<std::pair<std::string, std::string>>& kvs) {
  json a = json::array();
  for (const auto& [k, v] : kvs)
    a.push_back(json::array({k, v}));
  return a;
}

json GlobalArgs(const std::vector<std::pair<std::string, std::string>>& kvs) {
  json o = json::object();
  for (const auto& [k, v] : kvs)
    o[k] = v;
  return o;
}

json PlatformJson(const Platform& p) {
  if (p.os.empty() && p.architecture.empty())
    return nullptr;
  std::string s = p.os + "/" + p.architecture;
  if (!p.variant.empty())
    s += "/" + p.variant;
  return s;
}

json LocationJson(const SourceLocation& l) {
  return json{{"file", l.file}, {"line", l.line}, {"end_line", l.end_line}};
}

json SourceJson(const CopySource& s) {
  switch (s.kind) {
    case CopySource::Kind::kContext:
      return json{{"type", "context"}};
    case CopySource::Kind::kStage:
      return json{{"type", "stage"}, {"stage", s.stage}};
    case CopySource::Kind::kImage:
      return json{{"type", "image"}, {"image", s.image}};
    case CopySource::Kind::kNamedContext:
      return json{{"type", "named-context"}, {"name", s.name}};
  }
  return nullptr;
}

const char* MountTypeName(MountType t) {
  switch (t) {
    case MountType::kBind: return "bind";
    case MountType::kCache: return "cache";
    case MountType::kTmpfs: return "tmpfs";
    case MountType::kSecret: return "secret";
    case MountType::kSsh: return "ssh";
  }
  return "?";
}

const char* SharingName(CacheSharing s) {
  switch (s) {
    case CacheSharing::kShared: return "shared";
    case CacheSharing::kPrivate: return "private";
    case CacheSharing::kLocked: return "locked";
  }
  return "?";
}

template <typename T>
json Opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json MountJson(const RunMount& m) {
  json j{{"type", MountTypeName(m.type)}, {"target", m.target}, {"readonly", m.read_only}};
  switch (m.type) {
    case MountType::kBind:
      j["source"] = m.source;
      j["from"] = m.from ? SourceJson(*m.from) : json{{"type", "context"}};
      break;
    case MountType::kCache:
      j["source"] = m.source;
      j["from"] = m.from ? SourceJson(*m.from) : json(nullptr);
      j["id"] = m.id;
      j["sharing"] = SharingName(m.sharing);
      j["mode"] = Opt(m.mode);
      j["uid"] = Opt(m.uid);
      j["gid"] = Opt(m.gid);
      break;
    case MountType::kTmpfs:
      j["size"] = Opt(m.size);
      break;
    case MountType::kSecret:
    case MountType::kSsh:
      j["id"] = m.id;
      j["mode"] = Opt(m.mode);
      j["uid"] = Opt(m.uid);
      j["gid"] = Opt(m.gid);
      j["required"] = m.required;
      if (m.type == MountType::kSecret)
        j["env"] = m.env;
      break;
  }
  return j;
}

json HeredocJson(const HeredocFile& h) {
  return json{{"name", h.name}, {"content", h.content}, {"expand", h.expand}, {"fd", h.file_descriptor}};
}

json HealthJson(const HealthcheckStep& h) {
  return json{{"test", h.test},
              {"interval_ns", h.interval_ns},
              {"timeout_ns", h.timeout_ns},
              {"start_period_ns", h.start_period_ns},
              {"start_interval_ns", h.start_interval_ns},
              {"retries", h.retries}};
}

struct OpVisitor {
  json operator()(const RunStep& r) const {
    json mounts = json::array();
    for (const auto& m : r.mounts)
      mounts.push_back(MountJson(m));
    json heredocs = json::array();
    for (const auto& h : r.heredocs)
      heredocs.push_back(HeredocJson(h));
    json files = json::array();
    for (const auto& [path, content] : r.files)
      files.push_back(json{{"path", path}, {"content", content}});
    return json{{"shell_form", r.shell_form}, {"command", r.command}, {"argv", r.argv},
                {"env", r.env},               {"args", r.args},       {"workdir", r.workdir},
                {"user", r.user},             {"mounts", mounts},     {"network", r.network},
                {"security", r.security},     {"heredocs", heredocs}, {"files", files}};
  }
  json operator()(const CopyStep& c) const {
    json heredocs = json::array();
    for (const auto& h : c.heredoc_sources)
      heredocs.push_back(HeredocJson(h));
    json j{{"sources", c.sources}, {"heredoc_sources", heredocs}, {"dest", c.dest},
           {"workdir", c.workdir}, {"from", SourceJson(c.from)},  {"chown", c.chown},
           {"chmod", c.chmod},     {"link", c.link},              {"excludes", c.excludes}};
    if (c.is_add) {
      j["checksum"] = c.checksum;
      j["keep_git_dir"] = c.keep_git_dir;
      j["unpack"] = Opt(c.unpack);
    } else {
      j["parents"] = c.parents;
    }
    return j;
  }
  json operator()(const EnvStep& e) const { return json{{"vars", Pairs(e.vars)}}; }
  json operator()(const LabelStep& l) const { return json{{"labels", Pairs(l.labels)}}; }
  json operator()(const ExposeStep& e) const { return json{{"ports", e.ports}}; }
  json operator()(const VolumeStep& v) const { return json{{"paths", v.paths}}; }
  json operator()(const UserStep& u) const { return json{{"user", u.user}}; }
  json operator()(const WorkdirStep& w) const { return json{{"path", w.path}}; }
  json operator()(const CommandStep& c) const { return json{{"shell_form", c.shell_form}, {"argv", c.argv}}; }
  json operator()(const StopSignalStep& s) const { return json{{"signal", s.signal}}; }
  json operator()(const HealthcheckStep& h) const { return HealthJson(h); }
  json operator()(const ShellStep& s) const { return json{{"shell", s.shell}}; }
  json operator()(const OnbuildStep& o) const { return json{{"trigger", o.trigger}}; }
  json operator()(const MaintainerStep& m) const { return json{{"author", m.author}}; }
  json operator()(const ArgStep& a) const {
    json args = json::array();
    for (const auto& d : a.args)
      args.push_back(json{{"name", d.name}, {"value", Opt(d.value)}});
    return json{{"args", args}};
  }
};

json BaseJson(const StageBase& b) {
  switch (b.kind) {
    case StageBase::Kind::kScratch:
      return json{{"type", "scratch"}};
    case StageBase::Kind::kImage:
      return json{{"type", "image"}, {"image", b.image}, {"written", b.written}, {"digest", b.digest}};
    case StageBase::Kind::kStage:
      return json{{"type", "stage"}, {"stage", b.stage}, {"written", b.written}};
    case StageBase::Kind::kContext:
      return json{{"type", "context"}, {"name", b.context}, {"written", b.written}};
  }
  return nullptr;
}

json ConfigJson(const StageConfig& c) {
  return json{{"env", c.env},
              {"working_dir", c.working_dir},
              {"user", c.user},
              {"cmd", Opt(c.cmd)},
              {"entrypoint", Opt(c.entrypoint)},
              {"labels", Pairs(c.labels)},
              {"exposed_ports", c.exposed_ports},
              {"volumes", c.volumes},
              {"stop_signal", Opt(c.stop_signal)},
              {"healthcheck", c.healthcheck ? HealthJson(*c.healthcheck) : json(nullptr)},
              {"shell", Opt(c.shell)},
              {"onbuild", c.onbuild},
              {"author", Opt(c.author)}};
}

}  // namespace

const char* StepKindName(StepKind kind) {
  switch (kind) {
    case StepKind::kRun: return "run";
    case StepKind::kCopy: return "copy";
    case StepKind::kAdd: return "add";
    case StepKind::kEnv: return "env";
    case StepKind::kLabel: return "label";
    case StepKind::kExpose: return "expose";
    case StepKind::kVolume: return "volume";
    case StepKind::kUser: return "user";
    case StepKind::kWorkdir: return "workdir";
    case StepKind::kEntrypoint: return "entrypoint";
    case StepKind::kCmd: return "cmd";
    case StepKind::kStopSignal: return "stopsignal";
    case StepKind::kHealthcheck: return "healthcheck";
    case StepKind::kShell: return "shell";
    case StepKind::kOnbuild: return "onbuild";
    case StepKind::kMaintainer: return "maintainer";
    case StepKind::kArg: return "arg";
  }
  return "?";
}

nlohmann::json StepCacheJson(const Step& step) {
  return json{{"kind", StepKindName(step.kind)}, {"op", std::visit(OpVisitor{}, step.op)}};
}

nlohmann::json GraphToJson(const BuildGraph& graph) {
  json stages = json::array();
  for (const Stage& st : graph.stages) {
    json steps = json::array();
    for (const Step& step : st.steps) {
      json j = StepCacheJson(step);
      j["meta"] = json{{"location", LocationJson(step.location)},
                       {"text", step.text},
                       {"created_by", step.created_by},
                       {"empty_layer", step.empty_layer},
                       {"from_onbuild", step.from_onbuild},
                       {"proxy_env", step.proxy_env}};
      steps.push_back(std::move(j));
    }
    stages.push_back(json{{"index", st.index},
                          {"source_index", st.source_index},
                          {"name", st.name},
                          {"base", BaseJson(st.base)},
                          {"platform", PlatformJson(st.platform)},
                          {"deps", st.deps},
                          {"steps", steps},
                          {"config", ConfigJson(st.config)},
                          {"meta", json{{"location", LocationJson(st.location)}}}});
  }
  return json{{"version", 1},
              {"stages", stages},
              {"target", graph.target},
              {"target_platform", PlatformJson(graph.target_platform)},
              {"build_platform", PlatformJson(graph.build_platform)},
              {"global_args", GlobalArgs(graph.global_args)},
              {"warnings", graph.warnings}};
}

// A display: bytes that are not UTF-8 (a RUN line may hold them) become U+FFFD.
std::string DumpGraph(const BuildGraph& graph) {
  return GraphToJson(graph).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace kiln
