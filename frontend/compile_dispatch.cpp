// The compiler, phase 5: each kept stage dispatched (base image config,
// ONBUILD triggers), every instruction into a typed, expanded Step.
// RUN is in compile_run.cpp, COPY/ADD in compile_copy.cpp.
#include <algorithm>
#include <map>
#include <set>

#include "compile_internal.h"

namespace kiln::frontend::compile_internal {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string TriggerText(const Instruction& onbuild) {
  std::string_view s = onbuild.original;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  if (s.size() >= 7 && Lower(s.substr(0, 7)) == "onbuild")
    s.remove_prefix(7);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  // The trigger's heredocs go with it, so that a build FROM the image can
  // parse it again (BuildKit keeps them too).
  std::string text(s);
  const std::vector<Heredoc>& docs = onbuild.sub.empty() ? onbuild.heredocs : onbuild.sub[0].heredocs;
  for (const Heredoc& h : docs)
    text += "\n" + h.content + h.name;
  return text;
}

}  // namespace

Expected<const BaseImageInfo*> Compiler::ResolveBaseImage(StageInfo& st, const Platform& platform) {
  std::string key = st.base.image + "|" + platform.str();
  auto it = resolved_.find(key);
  if (it == resolved_.end()) {
    auto info = opts_.resolve_base(st.base.image, platform);
    if (!info) {
      Error e = info.error();
      return Error(e.code(), file_.filename + ":" + std::to_string(st.from->start_line) + ": FROM " +
                                 st.base_written + ": " + e.message(), e.sys_errno());
    }
    it = resolved_.emplace(key, std::move(*info)).first;
  }
  return &it->second;
}

Status Compiler::CollectImageTriggerReferences(StageInfo& st) {
  if (st.base.kind != StageBase::Kind::kImage || !opts_.resolve_base)
    return Ok();
  KILN_ASSIGN_OR_RETURN(const BaseImageInfo* info, ResolveBaseImage(st, st.platform.value_or(target_platform_)));
  for (const std::string& text : info->onbuild) {
    auto parsed = ParseContainerfile(text, file_.filename);
    if (!parsed || parsed->instructions.size() != 1)
      continue;  // reported when the stage is compiled
    trigger_files_.push_back(std::move(*parsed));
    // A bad trigger is reported, with its context, when the stage is compiled.
    (void)CollectReferences(st, trigger_files_.back().instructions[0], st.from->start_line);
  }
  return Ok();
}

Status Compiler::DispatchStage(StageInfo& st, Stage& out) {
  ImageState img;
  std::vector<const Instruction*> stage_triggers;
  std::vector<std::string> image_triggers;
  out.base = st.base;
  Platform platform = st.platform.value_or(target_platform_);

  if (st.base.kind == StageBase::Kind::kStage) {
    const StageInfo& base = stages_[st.base_stage];
    img = base.final_state;
    platform = base.final_platform;
    out.base.stage = base.graph_index;
    img.config.onbuild.clear();
    for (const Instruction* ins : base.body)
      if (ins->keyword == "onbuild" && !ins->sub.empty())
        stage_triggers.push_back(&ins->sub[0]);
  } else if (st.base.kind == StageBase::Kind::kImage && opts_.resolve_base) {
    KILN_ASSIGN_OR_RETURN(const BaseImageInfo* found, ResolveBaseImage(st, platform));
    const BaseImageInfo& info = *found;
    for (const std::string& kv : info.env) {
      size_t eq = kv.find('=');
      img.env.Set(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    }
    if (!info.working_dir.empty())
      img.workdir = ResolvePath("/", info.working_dir);
    img.user = info.user;
    if (info.shell && !info.shell->empty())
      img.shell = *info.shell;
    if (!info.reference.empty())
      out.base.image = info.reference;
    out.base.digest = info.digest;
    image_triggers = info.onbuild;
  }
  if (!img.env.Has("PATH"))
    img.env.Set("PATH", kDefaultPath);
  st.final_platform = platform;

  ArgScope args;
  onbuild_line_ = st.from->start_line;
  for (const Instruction* trig : stage_triggers)
    KILN_TRY(Dispatch(st, img, args, *trig, out.steps, true, st.from->start_line));
  for (const std::string& text : image_triggers) {
    auto parsed = ParseContainerfile(text, file_.filename);
    if (!parsed || parsed->instructions.size() != 1)
      return At(*st.from, "FROM " + st.base_written + ": invalid ONBUILD trigger \"" + text + "\" in the base image" +
                              (parsed ? std::string(": onbuild trigger should be a single expression")
                                      : ": " + parsed.error().message()));
    trigger_files_.push_back(std::move(*parsed));
    KILN_TRY(Dispatch(st, img, args, trigger_files_.back().instructions[0], out.steps, true,
                      st.from->start_line));
  }
  onbuild_line_ = 0;
  for (const Instruction* ins : st.body)
    KILN_TRY(Dispatch(st, img, args, *ins, out.steps, false, ins->start_line));

  img.config.env = img.env.ToList();
  KILN_TRY(Charge(st.from->start_line, Bytes(img.config.env)));
  img.config.working_dir = img.workdir;
  img.config.user = img.user;
  out.config = img.config;
  out.platform = platform;
  st.final_state = std::move(img);
  return Ok();
}

Status Compiler::Dispatch(StageInfo& st, ImageState& img, ArgScope& args, const Instruction& ins,
                          std::vector<Step>& steps, bool from_onbuild, int location_line) {
  if (from_onbuild && (ins.keyword == "onbuild" || ins.keyword == "from" || ins.keyword == "maintainer"))
    return At(location_line, Upper(ins.keyword) + " isn't allowed as an ONBUILD trigger");
  auto flags = ParseFlags(ins.keyword, ins.flags);
  if (!flags)
    return from_onbuild ? At(location_line, "ONBUILD trigger " + Upper(ins.keyword) + ": " + flags.error().message())
                        : Wrap(ins, flags.error());
  Step step;
  step.location = {file_.filename, location_line, from_onbuild ? location_line : ins.end_line};
  step.text = ins.original;
  step.from_onbuild = from_onbuild;
  const EnvLookup env = StageLookup(img, args);
  const std::string kw = ins.keyword;
  const std::string KW = Upper(kw);

  auto need_args = [&](size_t n) -> Status {
    if (ins.args.size() < n)
      return At(ins, KW + " requires at least " + std::to_string(n) + (n == 1 ? " argument" : " arguments"));
    return Ok();
  };
  auto pairs = [&](std::vector<std::pair<std::string, std::string>>* out) -> Status {
    KILN_TRY(need_args(1));
    // The parser gives (name, value, separator) triples, as BuildKit's
    // node list: separator "=" for NAME=VALUE, "" for the legacy NAME VALUE.
    size_t stride = 3;
    for (size_t i = 2; i < ins.args.size(); i += 3)
      if (ins.args[i] != "=" && !ins.args[i].empty())
        stride = 2;
    if (ins.args.size() % stride != 0)
      stride = 2;
    if (ins.args.size() % stride != 0)
      return At(ins, KW + " requires pairs of names and values");
    for (size_t i = 0; i + 1 < ins.args.size(); i += stride) {
      KILN_ASSIGN_OR_RETURN(std::string k, Expand(ins, ins.args[i], env));
      KILN_ASSIGN_OR_RETURN(std::string v, Expand(ins, ins.args[i + 1], env));
      if (k.empty())
        return At(ins, KW + " names can not be blank");
      out->emplace_back(std::move(k), std::move(v));
    }
    return Ok();
  };
  auto kv_text = [](const std::vector<std::pair<std::string, std::string>>& kvs) {
    std::string s;
    for (const auto& [k, v] : kvs)
      s += " " + k + "=" + v;
    return s;
  };

  if (kw == "run") {
    step.kind = StepKind::kRun;
    KILN_TRY(DispatchRun(st, img, args, ins, *flags, step));
  } else if (kw == "copy" || kw == "add") {
    step.kind = kw == "add" ? StepKind::kAdd : StepKind::kCopy;
    KILN_TRY(DispatchCopy(st, img, ins, *flags, step, kw == "add", env));
  } else if (kw == "env") {
    step.kind = StepKind::kEnv;
    EnvStep e;
    KILN_TRY(pairs(&e.vars));
    for (const auto& [k, v] : e.vars)
      img.env.Set(k, v);
    step.created_by = "ENV" + kv_text(e.vars);
    step.op = std::move(e);
  } else if (kw == "label") {
    step.kind = StepKind::kLabel;
    LabelStep l;
    KILN_TRY(pairs(&l.labels));
    for (const auto& [k, v] : l.labels) {
      auto& labels = img.config.labels;
      auto it = std::find_if(labels.begin(), labels.end(), [&](const auto& p) { return p.first == k; });
      if (it != labels.end())
        it->second = v;
      else
        labels.emplace_back(k, v);
    }
    step.created_by = "LABEL" + kv_text(l.labels);
    step.op = std::move(l);
  } else if (kw == "expose") {
    step.kind = StepKind::kExpose;
    KILN_TRY(need_args(1));
    ExposeStep e;
    for (const std::string& a : ins.args) {
      auto words = ExpandWords(a, env, Opts());
      if (!words)
        return Wrap(ins, words.error());
      for (const std::string& w : *words) {
        auto ports = ParseExposePort(w);
        if (!ports)
          return Wrap(ins, ports.error());
        for (auto& p : *ports)
          if (std::find(e.ports.begin(), e.ports.end(), p) == e.ports.end())
            e.ports.push_back(p);
      }
    }
    for (const auto& p : e.ports)
      if (std::find(img.config.exposed_ports.begin(), img.config.exposed_ports.end(), p) ==
          img.config.exposed_ports.end())
        img.config.exposed_ports.push_back(p);
    step.created_by = "EXPOSE " + Join(e.ports, " ");
    step.op = std::move(e);
  } else if (kw == "volume") {
    step.kind = StepKind::kVolume;
    KILN_TRY(need_args(1));
    VolumeStep v;
    for (const std::string& a : ins.args) {
      KILN_ASSIGN_OR_RETURN(std::string p, Expand(ins, a, env));
      if (p.empty())
        return At(ins, "VOLUME specified can not be an empty string");
      v.paths.push_back(p);
      if (std::find(img.config.volumes.begin(), img.config.volumes.end(), p) == img.config.volumes.end())
        img.config.volumes.push_back(p);
    }
    step.created_by = "VOLUME [" + Join(v.paths, " ") + "]";
    step.op = std::move(v);
  } else if (kw == "user") {
    step.kind = StepKind::kUser;
    KILN_TRY(need_args(1));
    KILN_ASSIGN_OR_RETURN(std::string u, Expand(ins, Join(ins.args, " "), env));
    if (u.empty())
      return At(ins, "USER requires a user name or id");
    img.user = u;
    step.created_by = "USER " + u;
    step.op = UserStep{u};
  } else if (kw == "workdir") {
    step.kind = StepKind::kWorkdir;
    KILN_TRY(need_args(1));
    KILN_ASSIGN_OR_RETURN(std::string p, Expand(ins, Join(ins.args, " "), env));
    if (p.empty())
      return At(ins, "WORKDIR requires a path");
    img.workdir = ResolvePath(img.workdir, p);
    step.created_by = "WORKDIR " + img.workdir;
    step.op = WorkdirStep{img.workdir};
  } else if (kw == "cmd" || kw == "entrypoint") {
    step.kind = kw == "cmd" ? StepKind::kCmd : StepKind::kEntrypoint;
    CommandStep c;
    c.shell_form = !ins.json_form;
    if (ins.json_form) {
      c.argv = ins.args;
    } else {
      c.argv = img.shell;
      c.argv.push_back(Join(ins.args, " "));
    }
    if (kw == "cmd") {
      img.config.cmd = c.argv;
      st.cmd_set = true;
    } else {
      img.config.entrypoint = c.argv;
      if (!st.cmd_set)
        img.config.cmd = std::vector<std::string>{};  // Docker: ENTRYPOINT resets an inherited CMD
    }
    step.created_by = KW + " " + GoQuoteList(c.argv);
    step.op = std::move(c);
  } else if (kw == "stopsignal") {
    step.kind = StepKind::kStopSignal;
    KILN_TRY(need_args(1));
    KILN_ASSIGN_OR_RETURN(std::string sig, Expand(ins, ins.args[0], env));
    if (auto s = ValidateSignal(sig); !s)
      return Wrap(ins, s.error());
    img.config.stop_signal = sig;
    step.created_by = "STOPSIGNAL " + sig;
    step.op = StopSignalStep{sig};
  } else if (kw == "healthcheck") {
    step.kind = StepKind::kHealthcheck;
    KILN_TRY(need_args(1));
    HealthcheckStep h;
    std::string type = Upper(ins.args[0]);
    if (type == "NONE") {
      if (ins.args.size() > 1)
        return At(ins, "HEALTHCHECK NONE takes no arguments");
      if (!flags->values.empty())
        return At(ins, "HEALTHCHECK NONE takes no flags");
      h.test = {"NONE"};
    } else if (type == "CMD") {
      if (ins.args.size() < 2)
        return At(ins, "HEALTHCHECK CMD requires a command");
      if (ins.json_form) {
        h.test = {"CMD"};
        h.test.insert(h.test.end(), ins.args.begin() + 1, ins.args.end());
      } else {
        h.test = {"CMD-SHELL", Join(std::vector<std::string>(ins.args.begin() + 1, ins.args.end()), " ")};
      }
      struct D {
        const char* flag;
        int64_t* out;
      } durations[] = {{"interval", &h.interval_ns},
                       {"timeout", &h.timeout_ns},
                       {"start-period", &h.start_period_ns},
                       {"start-interval", &h.start_interval_ns}};
      for (const D& d : durations) {
        if (!flags->Has(d.flag))
          continue;
        std::string v = flags->Get(d.flag);
        auto ns = ParseGoDuration(v);
        if (!ns)
          return At(ins, "HEALTHCHECK --" + std::string(d.flag) + "=" + v + ": " + ns.error().message());
        if (*ns != 0 && *ns < 1000000)
          return At(ins, "HEALTHCHECK --" + std::string(d.flag) + "=" + v + ": cannot be less than 1ms");
        *d.out = *ns;
      }
      if (flags->Has("retries")) {
        std::string v = flags->Get("retries");
        if (!IsDigits(v) || v.size() > 9)
          return At(ins, "HEALTHCHECK --retries=" + v + ": must be a non-negative integer");
        h.retries = std::stoi(v);
      }
    } else {
      return At(ins, "HEALTHCHECK: unknown type \"" + ins.args[0] + "\" (want CMD or NONE)");
    }
    img.config.healthcheck = h;
    step.created_by = "HEALTHCHECK " + GoQuoteList(h.test);
    step.op = std::move(h);
  } else if (kw == "shell") {
    step.kind = StepKind::kShell;
    if (!ins.json_form)
      return At(ins, "SHELL requires the arguments to be in JSON form");
    if (ins.args.empty())
      return At(ins, "SHELL requires at least one argument");
    img.shell = ins.args;
    img.config.shell = ins.args;
    step.created_by = "SHELL " + GoQuoteList(ins.args);
    step.op = ShellStep{ins.args};
  } else if (kw == "onbuild") {
    step.kind = StepKind::kOnbuild;
    if (ins.sub.empty())
      return At(ins, "ONBUILD requires an instruction");
    const std::string sub = ins.sub[0].keyword;
    if (sub == "onbuild" || sub == "from" || sub == "maintainer")
      return At(ins, Upper(sub) + " isn't allowed as an ONBUILD trigger");
    std::string trigger = TriggerText(ins);
    img.config.onbuild.push_back(trigger);
    step.created_by = "ONBUILD " + trigger;
    step.op = OnbuildStep{trigger};
  } else if (kw == "maintainer") {
    step.kind = StepKind::kMaintainer;
    KILN_TRY(need_args(1));
    std::string author = Join(ins.args, " ");
    img.config.author = author;
    step.created_by = "MAINTAINER " + author;
    step.op = MaintainerStep{author};
  } else if (kw == "arg") {
    step.kind = StepKind::kArg;
    KILN_TRY(need_args(1));
    ArgStep a;
    for (const std::string& word : ins.args) {
      ArgWord w = SplitArgWord(word);
      if (w.key.empty())
        return At(ins, "ARG names can not be blank");
      ArgStep::Def def{w.key, std::nullopt};
      if (auto it = opts_.build_args.find(w.key); it != opts_.build_args.end()) {
        def.value = it->second;  // the default is not expanded (BuildKit)
        consumed_.insert(w.key);
      } else if (w.raw_value) {
        KILN_ASSIGN_OR_RETURN(def.value, Expand(ins, *w.raw_value, env));
      } else if (meta_.Declared(w.key)) {
        def.value = meta_.Get(w.key);
        used_meta_.insert(w.key);
      }
      a.args.push_back(std::move(def));
    }
    std::string text = "ARG";
    for (const auto& d : a.args) {
      args.Set(d.name, d.value);
      text += " " + d.name + (d.value ? "=" + *d.value : "");
    }
    step.created_by = text;
    step.op = std::move(a);
  } else if (kw == "from") {
    return At(ins, "FROM is not allowed here");
  } else {
    return At(ins, "unknown instruction: " + KW);
  }
  size_t bytes = step.text.size() + step.created_by.size() + Bytes(step.proxy_env);
  if (const auto* r = std::get_if<RunStep>(&step.op)) {
    bytes += Bytes(r->env) + Bytes(r->args) + Bytes(r->argv);
    for (const auto& f : r->files)
      bytes += f.second.size();
  }
  KILN_TRY(Charge(location_line, bytes));
  steps.push_back(std::move(step));
  return Ok();
}

}  // namespace kiln::frontend::compile_internal
