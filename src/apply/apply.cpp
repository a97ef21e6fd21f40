// Applying a deployment model: the project's resources, images and
// containers (kiln/apply.h), and finding them again by their labels.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/acquire.h"
#include "kiln/apply.h"
#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/secret.h"
#include "kiln/store.h"

namespace kiln::apply {

namespace {

void Progress(const Env& env, const std::string& line) {
  if (env.progress)
    env.progress(line);
}

const deployment::Service* FindService(const deployment::Project& p, const std::string& name) {
  for (const auto& s : p.services)
    if (s.name == name)
      return &s;
  return nullptr;
}

int StopTimeout(const deployment::Service* s, int timeout) {
  if (timeout >= 0)
    return timeout;
  if (s && s->stop_grace_period_ns)
    return static_cast<int>((*s->stop_grace_period_ns + 999999999) / 1000000000);
  return 10;
}

std::map<std::string, std::string> Labels(const std::string& config_json) {
  std::map<std::string, std::string> out;
  nlohmann::json j = nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_object() && j.contains("labels") && j["labels"].is_object())
    for (const auto& [k, v] : j["labels"].items())
      if (v.is_string())
        out[k] = v.get<std::string>();
  return out;
}

/// What the container's state says about `condition`: nullopt = not yet.
std::optional<Status> Evaluate(const run::ContainerInfo& c, const std::string& service, const std::string& condition) {
  bool running = c.status == "running";
  bool exited = c.status == "exited" || c.status == "stopped";
  bool has_health = !c.health_json.empty() || !c.health_status.empty();
  auto failed = [&](const std::string& why) {
    return Status(Error(Errc::kFailed, "dependency failed to start: container " + c.name + " " + why));
  };
  if (condition == "service_started")
    return (running || exited || c.status == "created") ? std::optional<Status>(Ok()) : std::nullopt;
  if (condition == "service_completed_successfully") {
    if (!exited)
      return std::nullopt;
    if (c.exit_code == 0)
      return Ok();
    return Status(Error(Errc::kFailed, "service \"" + service + "\" didn't complete successfully: exit " +
                                           std::to_string(c.exit_code)));
  }
  bool want_health = condition == "service_healthy" || has_health;
  if (want_health) {
    if (running && !has_health)
      return failed("has no healthcheck configured");
    if (c.health_status == "healthy" && running)
      return Ok();
    if (c.health_status == "unhealthy")
      return failed("is unhealthy");
  } else if (running) {
    return Ok();
  }
  if (exited)
    return failed("exited (" + std::to_string(c.exit_code) + ")");
  return std::nullopt;
}

}  // namespace

Status WaitCondition(const Env& env, const std::string& service, const std::string& id, const std::string& condition) {
  std::optional<Status> result;
  auto check = [&]() {
    auto info = run::InspectContainer(env.paths, id);
    if (!info) {
      result = Status(std::move(info).error());
      return;
    }
    result = Evaluate(*info, service, condition);
  };
  int polls = 0;
  // The event log from its end: a health_status, died, start... event of
  // this container makes us look at its state. The state is read once right
  // after the log's end is taken (what changed before is in it), and every
  // 5 s in case an event was lost (events are best effort).
  events::Follow(
      env.paths.store_root,
      [&](const events::Event& e) {
        if (e.id != id)
          return true;
        check();
        return !result;
      },
      [&]() {
        if (env.cancelled && env.cancelled()) {
          result = Status(Error(Errc::kCancelled, "cancelled"));
          return false;
        }
        if (polls++ % 250 == 0)
          check();
        return !result;
      },
      20);  // the log's end looked at every 20 ms: a dependent starts within ~20 ms of the event
  if (!result)
    return Error(Errc::kFailed, "waiting for " + service + ": the event log ended");
  return *result;
}

Status EnsureResources(const Env& env, const deployment::Project& project) {
  for (const auto& [key, def] : project.networks) {
    if (def.external) {
      if (auto n = network::FindNetwork(*env.store, def.name); !n)
        return Error(Errc::kNotFound, "network " + def.name + " declared as external, but could not be found");
      continue;
    }
    if (network::FindNetwork(*env.store, def.name))
      continue;
    if (!def.driver.empty() && def.driver != "bridge")
      return Error(Errc::kInvalidInput, "network " + key + ": driver " + def.driver + " is not supported by kiln (bridge)");
    network::CreateOptions o;
    o.name = def.name;
    o.internal = def.internal;
    o.ignore = true;
    if (!def.ipam.empty()) {
      o.subnet = def.ipam[0].subnet;
      o.gateway = def.ipam[0].gateway;
    }
    o.labels = def.labels;
    o.labels[kProjectLabel] = project.name;
    o.labels[kNetworkLabel] = key;
    if (auto n = network::CreateNetwork(*env.store, o); !n)
      return std::move(n).error().WithContext("network " + key);
    Progress(env, "Network " + def.name + "  Created");
  }
  for (const auto& [key, def] : project.volumes) {
    if (def.external) {
      if (auto v = run::InspectVolume(env.paths, def.name); !v)
        return Error(Errc::kNotFound, "volume " + def.name + " declared as external, but could not be found");
      continue;
    }
    if (run::InspectVolume(env.paths, def.name))
      continue;
    if (!def.driver.empty() && def.driver != "local")
      return Error(Errc::kInvalidInput, "volume " + key + ": driver " + def.driver + " is not supported by kiln (local)");
    if (auto v = run::CreateVolume(env.paths, def.name, true); !v)
      return std::move(v).error().WithContext("volume " + key);
    Progress(env, "Volume " + def.name + "  Created");
  }
  for (const auto& [key, def] : project.secrets) {
    if (def.external) {
      if (auto s = secret::Inspect(env.paths.store_root, def.name); !s)
        return Error(Errc::kNotFound, "secret " + def.name + " declared as external, but could not be found");
      continue;
    }
    std::string value;
    if (!def.file.empty()) {
      auto data = ReadFile(def.file, secret::kMaxSecretBytes);
      if (!data)
        return std::move(data).error().WithContext("secret " + key + ": file");
      value = std::move(*data);
    } else {
      const char* v = std::getenv(def.environment.c_str());
      if (!v)
        return Error(Errc::kInvalidInput, "secret " + key + ": environment variable " + def.environment + " is not set");
      value = v;
    }
    secret::CreateOptions o;
    o.replace = true;
    o.labels[kProjectLabel] = project.name;
    if (auto s = secret::Create(env.paths.store_root, def.name, value, o); !s)
      return std::move(s).error().WithContext("secret " + key);
  }
  return Ok();
}

Status EnsureImages(const Env& env, const deployment::Project& project, const std::vector<std::string>& services,
                    bool force_build, bool no_build, const std::string& pull) {
  std::set<std::string> done;
  for (const auto& name : services) {
    const deployment::Service* s = FindService(project, name);
    if (!s)
      return Error(Errc::kInvalidInput, "no such service: " + name);
    std::string image = ImageName(project, *s);
    if (!done.insert(image).second)
      continue;
    bool stored = static_cast<bool>(image::ResolveLocal(*env.store, image));
    if (s->build && !no_build && (force_build || !stored || s->pull_policy == "build")) {
      if (!env.build)
        return Error(Errc::kUnsupported, "service " + name + ": building is not available here");
      Progress(env, "Service " + name + "  Building");
      if (auto st = env.build(*s, image); !st)
        return std::move(st).error().WithContext("service " + name + ": build");
      Progress(env, "Service " + name + "  Built");
      continue;
    }
    if (s->build && stored)
      continue;
    std::string policy = !pull.empty() ? pull : s->pull_policy;
    if (policy == "if_not_present" || policy.empty() || policy == "build")
      policy = "missing";
    auto p = image::ParsePullPolicy(policy);
    if (!p)
      return std::move(p).error().WithContext("service " + name + ": pull_policy");
    image::AcquireOptions o;
    o.policy = *p;
    if (s->build && !stored && *p == image::PullPolicy::kMissing && no_build)
      return Error(Errc::kNotFound, "service " + name + ": image " + image + " is not built (run without --no-build)");
    if (auto img = image::Acquire(*env.store, image, o); !img)
      return std::move(img).error().WithContext("service " + name);
  }
  return Ok();
}

Expected<std::vector<ProjectContainer>> FindContainers(const run::Paths& paths, const std::string& project, bool all) {
  auto list = run::ListContainers(paths, all);
  if (!list)
    return std::move(list).error();
  std::vector<ProjectContainer> out;
  for (auto& c : *list) {
    auto labels = Labels(c.config_json);
    auto it = labels.find(kProjectLabel);
    if (it == labels.end() || it->second != project)
      continue;
    ProjectContainer pc;
    pc.service = labels[kServiceLabel];
    pc.number = std::atoi(labels[kNumberLabel].c_str());
    pc.oneoff = labels[kOneoffLabel] == "True";
    pc.labels = std::move(labels);
    pc.info = std::move(c);
    out.push_back(std::move(pc));
  }
  std::stable_sort(out.begin(), out.end(), [](const ProjectContainer& a, const ProjectContainer& b) {
    if (a.service != b.service)
      return a.service < b.service;
    if (a.oneoff != b.oneoff)
      return !a.oneoff;
    return a.number < b.number;
  });
  return out;
}

Expected<std::vector<network::Network>> FindNetworks(const Store& store, const std::string& project) {
  auto list = network::ListNetworks(store);
  if (!list)
    return std::move(list).error();
  std::vector<network::Network> out;
  for (auto& n : *list) {
    auto it = n.labels.find(kProjectLabel);
    if (it != n.labels.end() && it->second == project)
      out.push_back(std::move(n));
  }
  return out;
}

Expected<std::vector<Started>> Up(const Env& env, const deployment::Project& project, const UpOptions& options) {
  auto selected = SelectServices(project, options.services, options.no_deps);
  if (!selected)
    return std::move(selected).error();
  std::vector<std::string> warnings;
  std::map<std::string, run::RunOptions> opts;
  for (const auto& name : *selected) {  // every service checked before anything is made
    auto o = ServiceRunOptions(project, *FindService(project, name), &warnings);
    if (!o)
      return std::move(o).error();
    opts[name] = std::move(*o);
  }
  for (const auto& w : warnings)
    Progress(env, "WARN " + w);
  if (auto st = EnsureResources(env, project); !st)
    return st.error();
  if (auto st = EnsureImages(env, project, *selected, options.build, options.no_build, options.pull); !st)
    return st.error();
  auto existing_list = FindContainers(env.paths, project.name, true);
  if (!existing_list)
    return std::move(existing_list).error();
  std::map<std::string, ProjectContainer> existing;
  for (auto& c : *existing_list)
    if (!c.oneoff)
      existing[c.info.name] = std::move(c);

  std::map<std::string, std::string> ids;  // service -> container id
  std::vector<Started> out;
  // One service: wait for its dependencies' conditions, then leave, start
  // or (re)create its container. The services of a level run this in
  // parallel threads (run::Run spawns each monitor with only its own
  // descriptors; the store and the records are flock()ed per call).
  std::mutex mu;  // ids, recreated
  std::set<std::string> recreated;  // services whose container is new in this up
  auto start_one = [&](const std::string& name, std::optional<Started>* result) -> Status {
    const deployment::Service& s = *FindService(project, name);
    if (!options.no_start) {
      for (const auto& d : s.depends_on) {
        std::string dep_id;
        {
          std::lock_guard<std::mutex> g(mu);
          if (auto it = ids.find(d.service); it != ids.end())
            dep_id = it->second;
        }
        if (dep_id.empty()) {
          const deployment::Service* ds = FindService(project, d.service);
          if (!ds)
            continue;
          // --no-deps: the dependency's container as it is, if any.
          auto it2 = existing.find(ContainerName(project, *ds));
          if (it2 == existing.end())
            continue;
          dep_id = it2->second.info.id;
        }
        if (d.condition != "service_started")
          Progress(env, "Container " + ContainerName(project, *FindService(project, d.service)) + "  Waiting");
        Status st = WaitCondition(env, d.service, dep_id, d.condition);
        if (!st) {
          if (st.error().code() == Errc::kCancelled || d.required)
            return st.error();
          Progress(env, "WARN service " + name + ": optional dependency " + d.service + ": " + st.error().message());
        } else if (d.condition != "service_started") {
          Progress(env, "Container " + ContainerName(project, *FindService(project, d.service)) +
                            (d.condition == "service_healthy" ? "  Healthy" : "  Exited"));
        }
      }
    }
    run::RunOptions o = opts.at(name);
    auto img = image::ResolveLocal(*env.store, o.image);
    std::string image_id = img ? img->id().str() : "";
    std::string hash = ConfigHash(o);
    o.labels.push_back(std::string(kConfigHashLabel) + "=" + hash);
    o.labels.push_back(std::string(kImageLabel) + "=" + image_id);
    if (auto it = existing.find(o.name); it != existing.end()) {
      const ProjectContainer& c = it->second;
      bool same = c.labels.count(kConfigHashLabel) && c.labels.at(kConfigHashLabel) == hash &&
                  c.labels.count(kImageLabel) && c.labels.at(kImageLabel) == image_id;
      // network_mode: service:X shares X's namespace: a new X needs a new one.
      if (s.network_mode.rfind("service:", 0) == 0) {
        std::lock_guard<std::mutex> g(mu);
        same = same && !recreated.count(s.network_mode.substr(8));
      }
      if ((same && !options.force_recreate) || options.no_recreate) {
        if (c.info.status != "running" && !options.no_start) {
          if (auto st = run::StartContainer(env.paths, c.info.id); !st)
            return std::move(st).error().WithContext("container " + o.name);
          Progress(env, "Container " + o.name + "  Started");
        } else {
          Progress(env, "Container " + o.name + "  Running");
        }
        *result = Started{name, o.name, c.info.id, false};
        return Ok();
      }
      Progress(env, "Container " + o.name + "  Recreate");
      (void)run::StopContainer(env.paths, c.info.id, StopTimeout(&s, -1));
      if (auto st = run::RemoveContainer(env.paths, c.info.id, true); !st)
        return std::move(st).error().WithContext("container " + o.name);
    } else {
      Progress(env, "Container " + o.name + "  Creating");
    }
    if (options.no_start) {
      o.detach = false;
      o.create_only = true;
    }
    std::string id;
    auto status = run::Run(*env.store, env.paths, o, &id);
    if (!status)
      return std::move(status).error().WithContext("service " + name);
    Progress(env, "Container " + o.name + (options.no_start ? "  Created" : "  Started"));
    *result = Started{name, o.name, id, true};
    return Ok();
  };
  for (const auto& level : StartLevels(project, *selected)) {
    std::vector<std::optional<Started>> results(level.size());
    std::vector<Status> statuses(level.size());
    if (level.size() == 1) {
      statuses[0] = start_one(level[0], &results[0]);
    } else {
      std::vector<std::thread> threads;
      for (size_t i = 0; i < level.size(); ++i)
        threads.emplace_back([&, i] { statuses[i] = start_one(level[i], &results[i]); });
      for (auto& t : threads)
        t.join();
    }
    for (size_t i = 0; i < level.size(); ++i)
      if (results[i]) {
        ids[results[i]->service] = results[i]->id;
        if (results[i]->created)
          recreated.insert(results[i]->service);
        out.push_back(*results[i]);
      }
    for (auto& st : statuses)
      if (!st)
        return std::move(st).error();
  }
  if (options.wait && !options.no_start) {
    for (const auto& st : out) {
      Status w = WaitCondition(env, st.service, st.id, "running_or_healthy");
      if (!w)
        return std::move(w).error();
      Progress(env, "Container " + st.name + "  Healthy");
    }
  }
  return out;
}

namespace {

/// The project's containers of `services` (all when empty), non-one-off,
/// in stop order (dependents first) or start order.
Expected<std::vector<ProjectContainer>> Ordered(const Env& env, const deployment::Project& project,
                                                const std::vector<std::string>& services, bool stop_order) {
  auto selected = SelectServices(project, services, true);
  if (!selected)
    return std::move(selected).error();
  auto found = FindContainers(env.paths, project.name, true);
  if (!found)
    return std::move(found).error();
  std::vector<ProjectContainer> out;
  for (const auto& name : *selected)
    for (auto& c : *found)
      if (c.service == name && !c.oneoff)
        out.push_back(c);
  if (stop_order)
    std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

Status Stop(const Env& env, const deployment::Project& project, const std::vector<std::string>& services, int timeout) {
  auto list = Ordered(env, project, services, true);
  if (!list)
    return list.error();
  for (const auto& c : *list) {
    if (c.info.status != "running")
      continue;
    Progress(env, "Container " + c.info.name + "  Stopping");
    if (auto st = run::StopContainer(env.paths, c.info.id, StopTimeout(FindService(project, c.service), timeout)); !st)
      return std::move(st).error().WithContext("container " + c.info.name);
    Progress(env, "Container " + c.info.name + "  Stopped");
  }
  return Ok();
}

Status Start(const Env& env, const deployment::Project& project, const std::vector<std::string>& services) {
  auto list = Ordered(env, project, services, false);
  if (!list)
    return list.error();
  if (list->empty())
    return Error(Errc::kNotFound, "project " + project.name + " has no containers to start (run kiln compose up)");
  std::map<std::string, std::string> ids;
  for (const auto& c : *list)
    ids[c.service] = c.info.id;
  for (const auto& c : *list) {
    if (const deployment::Service* s = FindService(project, c.service))
      for (const auto& d : s->depends_on)
        if (auto it = ids.find(d.service); it != ids.end())
          if (Status st = WaitCondition(env, d.service, it->second, d.condition); !st && d.required)
            return st;
    if (c.info.status == "running")
      continue;
    if (auto st = run::StartContainer(env.paths, c.info.id); !st)
      return std::move(st).error().WithContext("container " + c.info.name);
    Progress(env, "Container " + c.info.name + "  Started");
  }
  return Ok();
}

Status Restart(const Env& env, const deployment::Project& project, const std::vector<std::string>& services,
               int timeout) {
  if (auto st = Stop(env, project, services, timeout); !st)
    return st;
  return Start(env, project, services);
}

Status Down(const Env& env, const deployment::Project& project, const DownOptions& options) {
  auto found = FindContainers(env.paths, project.name, true);
  if (!found)
    return found.error();
  std::vector<std::string> order;
  for (const auto& level : StartLevels(project, [&] {
         std::vector<std::string> all;
         for (const auto& s : project.services)
           all.push_back(s.name);
         return all;
       }()))
    order.insert(order.end(), level.begin(), level.end());
  std::reverse(order.begin(), order.end());
  std::vector<const ProjectContainer*> remove;
  // Orphans and one-off containers first, then the services, dependents first.
  // Without a file (`down -p NAME` where no compose file is): every
  // container labelled with the project is the project's.
  const bool no_file = project.services.empty();
  for (const auto& c : *found) {
    bool known = no_file || FindService(project, c.service) != nullptr;
    if (!known && !options.remove_orphans) {
      Progress(env, "WARN Found orphan container (" + c.info.name + ") for this project (service " + c.service +
                        " is not in the compose file): run down with --remove-orphans to remove it");
      continue;
    }
    if (!known || c.oneoff || no_file)
      remove.push_back(&c);
  }
  for (const auto& name : order)
    for (const auto& c : *found)
      if (c.service == name && !c.oneoff)
        remove.push_back(&c);
  for (const ProjectContainer* c : remove) {
    if (c->info.status == "running") {
      Progress(env, "Container " + c->info.name + "  Stopping");
      (void)run::StopContainer(env.paths, c->info.id, StopTimeout(FindService(project, c->service), options.timeout));
    }
    if (auto st = run::RemoveContainer(env.paths, c->info.id, true); !st)
      return std::move(st).error().WithContext("container " + c->info.name);
    Progress(env, "Container " + c->info.name + "  Removed");
  }
  auto nets = FindNetworks(*env.store, project.name);
  if (!nets)
    return nets.error();
  for (const auto& n : *nets) {
    if (auto st = network::RemoveNetwork(*env.store, n.name); !st)
      return std::move(st).error().WithContext("network " + n.name);
    Progress(env, "Network " + n.name + "  Removed");
  }
  if (options.volumes) {
    for (const auto& [key, def] : project.volumes) {
      if (def.external || !run::InspectVolume(env.paths, def.name))
        continue;
      if (auto st = run::RemoveVolume(env.paths, def.name, false); !st)
        return std::move(st).error().WithContext("volume " + def.name);
      Progress(env, "Volume " + def.name + "  Removed");
    }
  }
  return Ok();
}

}  // namespace kiln::apply
