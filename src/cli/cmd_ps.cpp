// kiln ps [-a] [-q] [-l] [-n N] [--no-trunc] [-s] [--filter K=V]... [--sort KEY]
// [--noheading] [--format json|TEMPLATE]: the containers, with podman's
// fields, filters and table (docs/format.md, docs/run.md).
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include "cli/format_util.h"
#include "cli/image_util.h"
#include "kiln/pod.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

/// "3 minutes" since an RFC 3339 time ("" when unparsable): ps's CREATED
/// and Up columns, pod ps's CREATED (cmd_pod.cpp).
std::string Ago(const std::string& when);
std::string Ago(const std::string& when) {
  auto t = ParseRfc3339(when);
  if (!t)
    return "";
  long d = static_cast<long>(std::time(nullptr) - *t);
  if (d < 1)
    return "Less than a second";
  if (d < 60)
    return std::to_string(d) + (d == 1 ? " second" : " seconds");
  if (d < 3600)
    return std::to_string(d / 60) + (d / 60 == 1 ? " minute" : " minutes");
  if (d < 86400)
    return std::to_string(d / 3600) + (d / 3600 == 1 ? " hour" : " hours");
  return std::to_string(d / 86400) + (d / 86400 == 1 ? " day" : " days");
}

namespace {

std::string StatusText(const run::ContainerInfo& c) {
  if (c.status == "running")  // podman: "Up 3 minutes (healthy)"
    return "Up " + Ago(c.started_at) + (c.health_status.empty() ? "" : " (" + c.health_status + ")");
  if (c.status == "restarting")  // between two runs of the restart policy (docker's words)
    return "Restarting (" + std::to_string(c.exit_code) + ") " + Ago(c.finished_at) + " ago";
  if (c.status == "exited") {
    std::string ago = Ago(c.finished_at);
    return "Exited (" + std::to_string(c.exit_code) + ")" + (ago.empty() ? "" : " " + ago + " ago");
  }
  return "Created";
}

std::string Joined(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v)
    s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string Hex(const std::string& digest) {
  return digest.rfind("sha256:", 0) == 0 ? digest.substr(7) : digest;
}

// -q, --noheading, -f and --format are ListFlags' (registered in podman's order below).
struct Flags : ListFlags {
  bool all = false, latest = false, no_trunc = false, size = false, pod = false;
  int last = -1;
  std::string sort = "created";
};

// What a container has beyond run::ContainerInfo: from its config record
// and its image.
struct Extra {
  std::string network;
  std::vector<std::string> mounts;
  nlohmann::json labels = nlohmann::json::object();
  int64_t size = -1;
  std::string pod_name;  ///< the pod's name ("" when in none)
};

// podman's --filter for ps: one key ORs its values, keys AND.
class Filter {
 public:
  Status Parse(const std::vector<std::string>& specs) {
    KILN_ASSIGN_OR_RETURN(
        filter_, ListFilter::Parse(specs,
                                   {"name", "id", "status", "label", "ancestor", "exited", "pod", "network", "health",
                                    "before", "since"},
                                   [](const std::string& key) {
                                     return key + " is an invalid filter (ps --filter takes name, id, status, label, "
                                                  "ancestor, exited, before, since, network, pod, health)";
                                   }));
    for (const auto& [key, values] : filter_.by_key()) {
      for (const auto& value : values) {
        if (key == "status") {
          static const char* const kStates[] = {"created", "exited",     "paused",  "running",
                                                "unknown", "configured", "stopped", "removing"};
          if (std::find(std::begin(kStates), std::end(kStates), value) == std::end(kStates))
            return Error(Errc::kInvalidInput,
                         "unknown container state: " + value + " (created, running, exited, paused, unknown)");
        }
        if (key == "exited" && value.find_first_not_of("0123456789") != std::string::npos)
          return Error(Errc::kInvalidInput, "--filter exited=" + value + ": not an exit code");
        if (key == "name") {
          auto re = std::make_shared<RE2>(value, RE2::Quiet);
          if (!re->ok())
            return Error(Errc::kInvalidInput, "--filter name=" + value + ": " + re->error());
          names_.push_back(re);
        }
      }
    }
    return Ok();
  }

  bool NeedsLabels() const { return filter_.Has("label"); }

  bool Match(const run::ContainerInfo& c, const Extra& x, const std::vector<run::ContainerInfo>& all) const {
    return filter_.Match(
        [&](const std::string& key, const std::string& v, size_t i) { return MatchOne(key, v, i, c, x, all); });
  }

 private:
  bool MatchOne(const std::string& key, const std::string& v, size_t i, const run::ContainerInfo& c, const Extra& x,
                const std::vector<run::ContainerInfo>& all) const {
    if (key == "name")
      return RE2::PartialMatch(c.name, *names_[i]);
    if (key == "id")
      return c.id.rfind(v, 0) == 0;
    if (key == "status")
      return c.status == v || (v == "stopped" && c.status == "exited") || (v == "configured" && c.status == "created");
    if (key == "exited")
      return c.status == "exited" && std::to_string(c.exit_code) == v;
    if (key == "label")
      return LabelMatches(x.labels, v);
    if (key == "ancestor") {
      std::string id = Hex(c.image_id);
      if (c.image == v || (v.size() >= 3 && id.rfind(Hex(v), 0) == 0))
        return true;
      for (const auto& cand : CandidateNames(v))
        if (cand == c.image || cand == c.image + ":latest")
          return true;
      // "busybox" names "localhost/busybox:latest" and ".../busybox:1.36"
      std::string repo = c.image.substr(0, c.image.rfind(':') == std::string::npos ||
                                                   c.image.rfind(':') < c.image.rfind('/')
                                               ? std::string::npos
                                               : c.image.rfind(':'));
      for (const auto& cand : CandidateNames(v)) {
        std::string crepo = cand.substr(0, cand.rfind(':') == std::string::npos || cand.rfind(':') < cand.rfind('/')
                                               ? std::string::npos
                                               : cand.rfind(':'));
        if (v.find(':') == std::string::npos && crepo == repo)
          return true;
      }
      return false;
    }
    if (key == "network")
      return x.network == v;
    if (key == "before" || key == "since") {
      // another container, by name or ID: created before / after it
      for (const auto& o : all)
        if (o.name == v || (v.size() >= 3 && o.id.rfind(v, 0) == 0))
          return key == "before" ? c.created < o.created : c.created > o.created;
      return false;
    }
    if (key == "pod")  // the pod's name, full ID or ID prefix (docs/pods.md)
      return !c.pod.empty() && (x.pod_name == v || (v.size() >= 3 && c.pod.rfind(v, 0) == 0));
    // health=: as in podman for a container without a health check, nothing matches.
    return false;
  }

  ListFilter filter_;
  std::vector<std::shared_ptr<RE2>> names_;  // names_[i] is the i-th name= value
};


int PsCommand(Context& ctx, const Flags& f) {
  static const char* const kSorts[] = {"command", "created", "id", "image", "names", "runningfor", "size", "status"};
  if (std::find(std::begin(kSorts), std::end(kSorts), f.sort) == std::end(kSorts))
    return ReportFormatError(Error(Errc::kInvalidInput, "invalid argument \"" + f.sort +
                                                            "\" for \"--sort\" flag: choose from command, created, "
                                                            "id, image, names, runningfor, size, status"));
  Filter filter;
  if (auto st = filter.Parse(f.filters); !st)
    return ReportFormatError(st.error());  // podman: 125 for a bad filter
  run::Paths paths = RunPaths(ctx);
  bool all = f.all || f.latest || f.last >= 0;
  auto list = run::ListContainers(paths, all);
  if (!list)
    return ReportError(list.error());
  bool json = format::IsJsonFormat(f.format);
  bool want_labels = json || filter.NeedsLabels() || f.format.find("Label") != std::string::npos;
  std::optional<Store> store;
  std::map<std::string, nlohmann::json> image_labels;
  std::map<std::string, std::string> pod_names;
  if (auto pods = pod::ListPods(paths))
    for (const auto& p : *pods)
      pod_names[p.pod.id] = p.pod.name;
  std::vector<std::pair<const run::ContainerInfo*, Extra>> rows;
  for (const auto& c : *list) {
    Extra x;
    if (!c.pod.empty())
      x.pod_name = pod_names[c.pod];
    nlohmann::json config = nlohmann::json::parse(c.config_json, nullptr, false);
    if (config.is_object()) {
      if (config.contains("network") && config["network"].is_string())
        x.network = config["network"].get<std::string>();
      // A container network's name (docs/network.md): its first network.
      if (config.contains("networks") && config["networks"].is_object() && !config["networks"].empty())
        x.network = config["networks"].begin().key();
      if (config.contains("mounts") && config["mounts"].is_array())
        for (const auto& m : config["mounts"])
          if (m.is_object() && m.contains("target") && m["target"].is_string())
            x.mounts.push_back(m["target"].get<std::string>());
    }
    if (want_labels) {
      auto it = image_labels.find(c.image_id);
      if (it == image_labels.end()) {
        nlohmann::json labels = nlohmann::json::object();
        if (!store)
          if (auto s = OpenImageStore(ctx))
            store.emplace(std::move(*s));
        if (store)
          if (auto img = store->ResolveImage(c.image_id))
            for (const auto& [k, v] : img->config.config.labels)
              labels[k] = v;
        it = image_labels.emplace(c.image_id, labels).first;
      }
      x.labels = it->second;
      // The container's own labels (the image's merged with run --label at
      // creation); older records have none: the image's above.
      if (config.is_object() && config.contains("labels") && config["labels"].is_object() &&
          !config["labels"].empty())
        x.labels = config["labels"];
    }
    if (!filter.Match(c, x, *list))
      continue;
    if (f.size)
      x.size = run::ContainerWritableSize(paths, c.id);
    rows.push_back({&c, std::move(x)});
  }
  // newest first (ListContainers' order); --sort picks another key
  auto key = [&](const run::ContainerInfo& c, const Extra& x) -> std::string {
    if (f.sort == "command") return Joined(c.command, " ");
    if (f.sort == "id") return c.id;
    if (f.sort == "image") return c.image;
    if (f.sort == "names") return c.name;
    if (f.sort == "status") return c.status;
    if (f.sort == "size") {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(x.size));
      return buf;
    }
    return "";
  };
  if (f.sort != "created" && f.sort != "runningfor")
    std::stable_sort(rows.begin(), rows.end(),
                     [&](const auto& a, const auto& b) { return key(*a.first, a.second) < key(*b.first, b.second); });
  if (f.latest && rows.size() > 1)
    rows.resize(1);
  if (f.last >= 0 && rows.size() > static_cast<size_t>(f.last))
    rows.resize(static_cast<size_t>(f.last));
  if (f.quiet) {
    for (const auto& [c, x] : rows)
      std::printf("%s\n", f.no_trunc ? c->id.c_str() : c->id.substr(0, 12).c_str());
    return 0;
  }
  std::vector<nlohmann::json> json_rows, tmpl_rows;
  for (const auto& [cp, x] : rows) {
    const run::ContainerInfo& c = *cp;
    std::string created_ago = Ago(c.created);
    created_ago = created_ago.empty() ? "" : created_ago + " ago";
    std::string size_text;
    if (x.size >= 0)
      size_text = HumanSize(x.size);
    if (json) {
      nlohmann::json j = {{"AutoRemove", c.auto_remove},
                          {"Command", c.command},
                          {"CreatedAt", created_ago},
                          {"Exited", c.status == "exited"},
                          {"ExitedAt", UnixOrZero(c.finished_at)},
                          {"ExitCode", c.exit_code},
                          {"Id", c.id},
                          {"Image", c.image},
                          {"ImageID", Hex(c.image_id)},
                          {"IsInfra", c.infra},
                          {"Labels", x.labels.empty() ? nlohmann::json(nullptr) : x.labels},
                          {"Mounts", x.mounts},
                          {"Names", {c.name}},
                          {"Namespaces", nlohmann::json::object()},
                          {"Networks", x.network.empty() ? nlohmann::json::array() : nlohmann::json::array({x.network})},
                          {"Pid", c.pid},
                          {"Pod", c.pod},
                          {"PodName", x.pod_name},
                          {"Ports", c.ports.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.ports)},
                          {"Size", x.size >= 0 ? nlohmann::json{{"RootFsSize", 0}, {"RwSize", x.size}}
                                               : nlohmann::json(nullptr)},
                          {"StartedAt", UnixOrZero(c.started_at)},
                          {"State", c.status},
                          {"Status", StatusText(c)},
                          {"Created", UnixOrZero(c.created)}};
      json_rows.push_back(std::move(j));
      continue;
    }
    std::string command = Joined(c.command, " ");
    if (!f.no_trunc && command.size() > 20)  // podman cuts at 17 and adds "..."
      command = command.substr(0, 17) + "...";
    tmpl_rows.push_back({{"ID", f.no_trunc ? c.id : c.id.substr(0, 12)},
                         {"Image", c.image},
                         {"ImageID", f.no_trunc ? Hex(c.image_id) : Hex(c.image_id).substr(0, 12)},
                         {"Command", command},
                         {"CreatedAt", GoTime(c.created)},
                         {"Created", GoTime(c.created)},
                         {"CreatedHuman", created_ago},
                         {"RunningFor", created_ago},
                         {"Status", StatusText(c)},
                         {"State", c.status},
                         {"Ports", Joined(c.ports, ", ")},
                         {"Names", c.name},
                         {"Labels", x.labels},
                         {"Mounts", x.mounts},
                         {"Networks", x.network},
                         {"Pod", f.no_trunc ? c.pod : c.pod.substr(0, std::min<size_t>(12, c.pod.size()))},
                         {"PodName", x.pod_name},
                         {"IsInfra", c.infra},
                         {"Pid", c.pid},
                         {"ExitCode", c.exit_code},
                         {"Exited", c.status == "exited"},
                         {"ExitedAt", UnixOrZero(c.finished_at)},
                         {"StartedAt", UnixOrZero(c.started_at)},
                         {"AutoRemove", c.auto_remove},
                         {"Namespaces", nlohmann::json::object()},
                         {"Size", size_text}});
  }
  format::ListOptions o;
  o.default_format = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
  if (f.pod)  // podman's --pod: the pod's ID and name
    o.default_format += "\t{{.Pod}}\t{{.PodName}}";
  if (f.size)
    o.default_format += "\t{{.Size}}";
  o.headers = {{"ID", "CONTAINER ID"}, {"CreatedHuman", "CREATED"}, {"Pod", "POD ID"}, {"PodName", "PODNAME"}};
  o.template_options = TemplateOptions("ps", "ps.Container");
  return f.Print(o, json_rows, tmpl_rows, 2);
}


}  // namespace

void AddPsCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("ps", "list containers (running ones; -a for all)");
  auto f = std::make_shared<Flags>();
  cmd->add_flag("-a,--all", f->all, "show every container, not only the running ones");
  cmd->add_flag("-q,--quiet", f->quiet, "print only the container IDs");
  cmd->add_flag("-l,--latest", f->latest, "show only the latest created container (any state)");
  cmd->add_option("-n,--last", f->last, "show the N latest created containers (any state)");
  cmd->add_flag("--no-trunc", f->no_trunc, "do not truncate IDs and commands");
  cmd->add_flag("-p,--pod", f->pod, "show the pod of each container (POD ID and PODNAME columns)");
  cmd->add_flag("-s,--size", f->size, "show the size of each container's writable layer (SIZE column, .Size)");
  cmd->add_option("-f,--filter", f->filters,
                  "name=REGEX, id=PREFIX, status=STATE, label=KEY[=VALUE], ancestor=IMAGE, exited=CODE, "
                  "before=/since=CONTAINER, network=NAME, pod=NAME|ID; health= matches nothing yet. A key's "
                  "values OR, keys AND")
      ->allow_extra_args(false);
  cmd->add_option("--sort", f->sort, "command, created (default), id, image, names, runningfor, size, status");
  cmd->add_flag("--noheading", f->no_heading, "leave out the header row of a table");
  cmd->add_option("--format", f->format,
                  "json, a Go template ({{.Names}} {{.Status}}), or table TEMPLATE (docs/format.md)");
  SetAction(cmd, ctx, [&ctx, f] { return PsCommand(ctx, *f); });
}

}  // namespace kiln::cli
