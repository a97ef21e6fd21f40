// Config-only steps (ENV, CMD, LABEL...), history, and --explain-cache.
#include "engine/build_internal.h"

namespace kiln::engine {

namespace build_internal {

void Builder::AddHistory(const Step& step, StageState& st, bool empty_layer, const std::string& created) {
  HistoryEntry h;
  h.created = opts_.timestamp ? Now() : created;
  h.created_by = step.created_by;
  h.comment = "kiln";
  h.empty_layer = empty_layer;
  st.config.history.push_back(std::move(h));
}

void Builder::ApplyConfigStep(const Step& step, StageState& st) {
  ContainerConfig& c = st.config.config;
  std::visit(
      [&](const auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, EnvStep>) {
          for (const auto& [k, v] : op.vars)
            c.SetEnv(k, v);
        } else if constexpr (std::is_same_v<T, LabelStep>) {
          for (const auto& [k, v] : op.labels)
            c.labels[k] = v;
        } else if constexpr (std::is_same_v<T, ExposeStep>) {
          for (const auto& p : op.ports)
            if (std::find(c.exposed_ports.begin(), c.exposed_ports.end(), p) == c.exposed_ports.end())
              c.exposed_ports.push_back(p);
          std::sort(c.exposed_ports.begin(), c.exposed_ports.end());
        } else if constexpr (std::is_same_v<T, VolumeStep>) {
          for (const auto& p : op.paths)
            if (std::find(c.volumes.begin(), c.volumes.end(), p) == c.volumes.end())
              c.volumes.push_back(p);
          std::sort(c.volumes.begin(), c.volumes.end());
        } else if constexpr (std::is_same_v<T, UserStep>) {
          c.user = op.user;
        } else if constexpr (std::is_same_v<T, WorkdirStep>) {
          c.working_dir = op.path;
        } else if constexpr (std::is_same_v<T, CommandStep>) {
          if (step.kind == StepKind::kEntrypoint) {
            c.entrypoint = op.argv;
            // A new ENTRYPOINT resets a CMD inherited from the base (Docker).
            if (!st.cmd_set)
              c.cmd = std::nullopt;
          } else {
            c.cmd = op.argv;
            st.cmd_set = true;
          }
        } else if constexpr (std::is_same_v<T, StopSignalStep>) {
          c.stop_signal = op.signal;
        } else if constexpr (std::is_same_v<T, HealthcheckStep>) {
          c.healthcheck = HealthConfig{.test = op.test, .interval = op.interval_ns, .timeout = op.timeout_ns,
                                       .start_period = op.start_period_ns, .start_interval = op.start_interval_ns,
                                       .retries = op.retries};
        } else if constexpr (std::is_same_v<T, ShellStep>) {
          c.shell = op.shell;
        } else if constexpr (std::is_same_v<T, OnbuildStep>) {
          c.on_build.push_back(op.trigger);
        } else if constexpr (std::is_same_v<T, MaintainerStep>) {
          st.config.author = op.author;
        }
      },
      step.op);
}

std::vector<std::string> Builder::ExplainFiles(const std::string& old_input, const std::string& new_input) {
  auto load = [&](const std::string& input) -> nlohmann::json {
    size_t colon = input.find(':');
    if (colon == std::string::npos)
      return nullptr;
    auto text = store_.GetCacheRecord("files-" + input.substr(colon + 1));
    if (!text)
      return nullptr;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("files") || !j["files"].is_object())
      return nullptr;
    return j["files"];
  };
  nlohmann::json a = load(old_input), b = load(new_input);
  if (a.is_null() || b.is_null())
    return {"the files it copies changed (no file list recorded)"};
  std::vector<std::string> out;
  int more = 0;
  auto add = [&](std::string r) {
    if (out.size() < 10)
      out.push_back(std::move(r));
    else
      ++more;
  };
  auto split = [](const std::string& meta) {
    // "mode uid:gid [sha256:...|-> target]"
    std::array<std::string, 3> parts;
    size_t s1 = meta.find(' ');
    parts[0] = meta.substr(0, s1);
    if (s1 != std::string::npos) {
      size_t s2 = meta.find(' ', s1 + 1);
      parts[1] = meta.substr(s1 + 1, s2 == std::string::npos ? std::string::npos : s2 - s1 - 1);
      if (s2 != std::string::npos)
        parts[2] = meta.substr(s2 + 1);
    }
    return parts;
  };
  auto octal = [](const std::string& dec) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04lo", std::strtoul(dec.c_str(), nullptr, 10) & 07777ul);
    return std::string(buf);
  };
  for (const auto& [rel, meta] : b.items()) {
    if (!a.contains(rel)) {
      add("file " + rel + " was added");
      continue;
    }
    std::string om = a[rel].is_string() ? a[rel].get<std::string>() : "", nm = meta.is_string() ? meta.get<std::string>() : "";
    if (om == nm)
      continue;
    auto o = split(om), n = split(nm);
    std::vector<std::string> what;
    unsigned long otype = std::strtoul(o[0].c_str(), nullptr, 10) & ~07777ul,
                  ntype = std::strtoul(n[0].c_str(), nullptr, 10) & ~07777ul;
    if (otype != ntype)
      what.push_back("type");
    else if (o[0] != n[0])
      what.push_back("mode " + octal(o[0]) + " -> " + octal(n[0]));
    if (o[1] != n[1])
      what.push_back("owner " + o[1] + " -> " + n[1]);
    if (o[2] != n[2] && otype == ntype)
      what.push_back(n[2].rfind("->", 0) == 0 ? "link target" : "content");
    std::string joined;
    for (const auto& w : what)
      joined += (joined.empty() ? "" : ", ") + w;
    add("file " + rel + " changed: " + joined);
  }
  for (const auto& [rel, meta] : a.items())
    if (!b.contains(rel))
      add("file " + rel + " was removed");
  if (more)
    out.push_back("... and " + std::to_string(more) + " more files");
  if (out.empty())
    out.push_back("the files it copies changed");
  return out;
}

std::vector<std::string> Builder::Explain(const Stage& stage, size_t index, StageState& st, const nlohmann::json& cur) {
  (void)stage;
  std::string text = cur.value("text", "");
  auto note_first = [&](const std::string& why) {
    if (st.first_change.empty())
      st.first_change = "step " + std::to_string(index + 1) + " (" + text + "): " + why;
  };
  if (st.prev_record.is_null())
    return {"no earlier build of this stage is recorded"};
  const auto& steps = st.prev_record["steps"];
  if (index >= steps.size() || !steps[index].is_object() || !steps[index].contains("key")) {
    std::string why = "a new step (the last build of this stage had " + std::to_string(steps.size()) + " steps)";
    note_first(why);
    return {why};
  }
  const auto& old = steps[index];
  if (old.value("key", "") == cur.value("key", ""))
    return {"the same inputs as the last build, but no cache record (not written: --layers=false or a failed "
            "build; or removed: kiln prune --cache)"};
  std::vector<std::string> own;
  bool first = true;
  for (size_t k = 0; k < index && k < st.record_steps.size(); ++k)
    first = first && !st.record_steps[k].contains("key");
  bool parent_changed = old.value("parent", "") != cur.value("parent", "");
  if (parent_changed && first) {
    std::string was = st.prev_record.value("base", "");
    own.push_back(was == st.base_desc ? "the base changed: " + st.base_desc
                                      : "the base changed: " + was + " -> " + st.base_desc);
  }
  const auto& oo = old["op"];
  const auto& co = cur["op"];
  if (oo != co) {
    if (!oo.is_object() || oo.value("kind", "") != co.value("kind", "") || old.value("text", "") != text) {
      own.push_back("the instruction changed (was: " + old.value("text", "") + ")");
    } else {
      const auto& oop = oo["op"];
      const auto& cop = co["op"];
      std::set<std::string> fields;
      for (const auto& [k, v] : oop.items())
        fields.insert(k);
      for (const auto& [k, v] : cop.items())
        fields.insert(k);
      for (const auto& f : fields) {
        nlohmann::json ov = oop.contains(f) ? oop[f] : nlohmann::json(), cv = cop.contains(f) ? cop[f] : nlohmann::json();
        if (ov == cv)
          continue;
        if ((f == "args" || f == "env") && ov.is_array() && cv.is_array()) {
          std::map<std::string, std::string> om, cm;
          for (const auto& e : ov)
            if (e.is_string()) {
              std::string kv = e.get<std::string>();
              om[kv.substr(0, kv.find('='))] = kv;
            }
          for (const auto& e : cv)
            if (e.is_string()) {
              std::string kv = e.get<std::string>();
              cm[kv.substr(0, kv.find('='))] = kv;
            }
          std::set<std::string> names;
          for (const auto& [k, v] : om)
            if (!cm.count(k) || cm[k] != v)
              names.insert(k);
          for (const auto& [k, v] : cm)
            if (!om.count(k))
              names.insert(k);
          for (const auto& n : names)
            own.push_back((f == "args" ? "build arg " : "ENV ") + n + " changed");
          continue;
        }
        own.push_back("its " + f + " changed");
      }
    }
  }
  const auto& oi = old["inputs"];
  const auto& ci = cur["inputs"];
  if (oi != ci && oi.is_array() && ci.is_array()) {
    for (size_t i = 0; i < std::max(oi.size(), ci.size()); ++i) {
      std::string os = i < oi.size() && oi[i].is_string() ? oi[i].get<std::string>() : "";
      std::string cs = i < ci.size() && ci[i].is_string() ? ci[i].get<std::string>() : "";
      if (os == cs)
        continue;
      std::string type = cs.substr(0, cs.find(' '));
      std::string from = cur.value("from", "");
      if (type == "context" && os.rfind("context ", 0) == 0) {
        for (auto& r : ExplainFiles(os, cs))
          own.push_back(from.empty() ? r : r + " (in " + from + ")");
      } else if (type == "stage") {
        own.push_back("the result of " + from + " changed");
      } else if (type == "image") {
        own.push_back(from + " has a different digest");
      } else if (type == "secret") {
        size_t a = cs.find(' '), b = cs.find(' ', a + 1);
        own.push_back("secret " + cs.substr(a + 1, b - a - 1) + " changed");
      } else if (type == "bind") {
        size_t a = cs.find(' '), b = cs.find(' ', a + 1);
        own.push_back("the files bind-mounted at " + cs.substr(a + 1, b - a - 1) + " changed");
      } else {
        own.push_back("its inputs changed");
      }
    }
  }
  if (!own.empty()) {
    note_first(own[0]);
    return own;
  }
  if (parent_changed)
    return {st.first_change.empty() ? "an earlier step changed" : "an earlier step changed: " + st.first_change};
  return {"its cache key changed"};
}

}  // namespace build_internal

}  // namespace kiln::engine
