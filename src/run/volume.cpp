// Named volumes: <store>/containers/volumes/<name>/{volume.json,_data/}.
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "kiln/events.h"
#include "kiln/fs.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;

namespace {

bool ValidVolumeName(const std::string& n) {
  if (n.empty() || n.size() > 128 || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  return n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
         std::string::npos;
}

std::vector<std::string> Users(const Paths& paths, const std::string& name) {
  std::vector<std::string> out;
  auto list = ListContainers(paths, true);
  if (!list)
    return out;
  for (const auto& info : *list) {
    auto c = ReadConfig(paths, info.id);
    if (!c)
      continue;
    for (const auto& m : c->mounts)
      if (m.type == MountRequest::Type::kVolume && m.source == name) {
        out.push_back(info.id);
        break;
      }
  }
  return out;
}

Expected<VolumeInfo> Load(const Paths& paths, const std::string& name) {
  if (!ValidVolumeName(name))
    return Error(Errc::kInvalidInput, "invalid volume name " + name);
  std::string dir = VolumesRoot(paths) + "/" + name;
  auto text = ReadFile(dir + "/volume.json", 1 << 20);
  if (!text)
    return Error(Errc::kNotFound, "no such volume: " + name);
  VolumeInfo v;
  v.name = name;
  v.mountpoint = dir + "/_data";
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_object() && j.contains("created") && j["created"].is_string())
    v.created = j["created"].get<std::string>();
  v.used_by = Users(paths, name);
  return v;
}

}  // namespace

Expected<VolumeInfo> CreateVolume(const Paths& paths, const std::string& name, bool ignore_existing) {
  if (!ValidVolumeName(name))
    return Error(Errc::kInvalidInput, "invalid volume name " + name + ": use [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  KILN_TRY(MakeDirs(VolumesRoot(paths), 0700));
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(VolumesRoot(paths) + "/.lock", LOCK_EX));
  std::string dir = VolumesRoot(paths) + "/" + name;
  if (PathExists(dir + "/volume.json")) {
    if (!ignore_existing)
      return Error(Errc::kInvalidInput, "volume " + name + " already exists");
    return Load(paths, name);
  }
  KILN_TRY(MakeDirs(dir + "/_data", 0755));
  nlohmann::json j = {{"name", name}, {"created", NowRfc3339()}};
  KILN_TRY(WriteFileAtomic(dir + "/volume.json", j.dump() + "\n", 0600));
  events::Record(paths.store_root, "volume", "create", "", name);
  return Load(paths, name);
}

Expected<std::vector<VolumeInfo>> ListVolumes(const Paths& paths) {
  std::vector<VolumeInfo> out;
  auto names = ListDirSorted(VolumesRoot(paths));
  if (!names)
    return out;  // none yet, or unreadable: no volumes
  for (const auto& n : *names)
    if (ValidVolumeName(n))
      if (auto v = Load(paths, n))
        out.push_back(std::move(*v));
  return out;
}

Expected<VolumeInfo> InspectVolume(const Paths& paths, const std::string& name) { return Load(paths, name); }

Status RemoveVolume(const Paths& paths, const std::string& name, bool force) {
  KILN_ASSIGN_OR_RETURN(VolumeInfo v, Load(paths, name));
  if (!v.used_by.empty() && !force)
    return Error(Errc::kFailed, "volume " + name + " is in use by container " + v.used_by[0].substr(0, 12));
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(VolumesRoot(paths) + "/.lock", LOCK_EX));
  KILN_TRY(RemoveAll(VolumesRoot(paths) + "/" + name));
  events::Record(paths.store_root, "volume", "remove", "", name);
  return Ok();
}

Expected<std::vector<std::string>> PruneVolumes(const Paths& paths) {
  std::vector<std::string> removed;
  KILN_ASSIGN_OR_RETURN(auto all, ListVolumes(paths));
  for (const auto& v : all) {
    if (!v.used_by.empty())
      continue;
    if (RemoveVolume(paths, v.name, false)) {
      events::Record(paths.store_root, "volume", "prune", "", v.name);  // podman: remove, then prune
      removed.push_back(v.name);
    }
  }
  return removed;
}

}  // namespace kiln::run
