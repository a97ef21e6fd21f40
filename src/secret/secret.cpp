// Secrets in the store (include/kiln/secret.h, docs/secrets.md):
// <store>/secrets/<id>/{secret.json,data}, the directory 0700 and the value
// 0600; one flock'ed <store>/secrets/.lock serialises create and remove, so
// two `secret create NAME` never both succeed. Each record is written to
// .new-<id> and renamed into place: a crash leaves either no secret or a
// whole one (a left .new-* is ignored and removed by the next create).
#include "kiln/secret.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/lock.h"
#include "kiln/oci.h"
#include "kiln/random.h"
#include "kiln/unique_fd.h"

namespace kiln::secret {

namespace {

std::string Root(const std::string& store_root) { return store_root + "/secrets"; }

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 253 || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  return n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
         std::string::npos;
}

bool IsId(const std::string& s) {
  return s.size() == 25 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Expected<UniqueFd> Lock(const std::string& store_root) { return LockFile(Root(store_root) + "/.lock", LOCK_EX); }

Expected<SecretInfo> Load(const std::string& store_root, const std::string& id) {
  std::string dir = Root(store_root) + "/" + id;
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/secret.json", 1 << 20));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string())
    return Error(Errc::kCorrupt, "secret record " + dir + "/secret.json is damaged");
  SecretInfo s;
  s.id = id;
  s.name = j["name"].get<std::string>();
  s.created = j.value("created", "");
  s.updated = j.value("updated", s.created);
  if (j.contains("labels") && j["labels"].is_object())
    for (const auto& [k, v] : j["labels"].items())
      if (v.is_string())
        s.labels[k] = v.get<std::string>();
  s.path = dir;
  return s;
}

Status WriteRecord(const std::string& dir, const SecretInfo& s) {
  nlohmann::json j = {{"name", s.name}, {"created", s.created}, {"updated", s.updated}, {"labels", s.labels}};
  return WriteFileAtomic(dir + "/secret.json", j.dump() + "\n", 0600);
}

std::vector<std::string> Ids(const std::string& store_root) {
  std::vector<std::string> ids;
  DIR* d = ::opendir(Root(store_root).c_str());
  if (!d)
    return ids;
  while (struct dirent* e = ::readdir(d))
    if (IsId(e->d_name))
      ids.push_back(e->d_name);
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

Expected<SecretInfo> Find(const std::string& store_root, const std::string& key) {
  if (key.empty())
    return Error(Errc::kInvalidInput, "a secret name or ID is required");
  std::vector<SecretInfo> by_prefix;
  for (const std::string& id : Ids(store_root)) {
    auto s = Load(store_root, id);
    if (!s)
      continue;
    if (s->name == key || id == key)
      return s;
    if (id.compare(0, key.size(), key) == 0)
      by_prefix.push_back(*s);
  }
  if (by_prefix.size() == 1)
    return by_prefix[0];
  if (by_prefix.size() > 1)
    return Error(Errc::kInvalidInput, "secret ID prefix " + key + " is ambiguous");
  return Error(Errc::kNotFound, "no such secret: " + key);
}

}  // namespace

Expected<SecretInfo> Create(const std::string& store_root, const std::string& name, const std::string& value,
                            const CreateOptions& options) {
  if (!ValidName(name))
    return Error(Errc::kInvalidInput,
                 "invalid secret name \"" + name + "\": use [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 253 characters");
  if (value.empty())
    return Error(Errc::kInvalidInput, "secret " + name + ": the value is empty");
  if (value.size() > kMaxSecretBytes)
    return Error(Errc::kInvalidInput, "secret " + name + ": the value is " + std::to_string(value.size()) +
                                          " bytes; the most is " + std::to_string(kMaxSecretBytes));
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, Lock(store_root));
  std::string root = Root(store_root);
  // What a crash left half-made.
  if (DIR* d = ::opendir(root.c_str())) {
    std::vector<std::string> litter;
    while (struct dirent* e = ::readdir(d))
      if (std::string(e->d_name).rfind(".new-", 0) == 0)
        litter.push_back(root + "/" + e->d_name);
    ::closedir(d);
    for (const auto& l : litter)
      (void)RemoveAll(l);
  }
  std::string now = NowRfc3339();
  for (const std::string& id : Ids(store_root)) {
    auto s = Load(store_root, id);
    if (!s || s->name != name)
      continue;
    if (!options.replace)
      return Error(Errc::kInvalidInput, "secret name " + name + " is in use (secret rm it, or --replace)");
    s->updated = now;
    if (!options.labels.empty())
      s->labels = options.labels;
    KILN_TRY(WriteFileAtomic(s->path + "/data", value, 0600));
    KILN_TRY(WriteRecord(s->path, *s));
    events::Record(store_root, "secret", "create", s->id, s->name);
    return s;
  }
  KILN_ASSIGN_OR_RETURN(std::string id, RandomHex(25));  // podman's 25-hex IDs
  std::string tmp = root + "/.new-" + id;
  if (::mkdir(tmp.c_str(), 0700) != 0)
    return Error::FromErrno("mkdir " + tmp);
  SecretInfo s;
  s.id = id;
  s.name = name;
  s.created = s.updated = now;
  s.labels = options.labels;
  Status st = WriteFileAtomic(tmp + "/data", value, 0600);
  if (st)
    st = WriteRecord(tmp, s);
  if (st && ::rename(tmp.c_str(), (root + "/" + id).c_str()) != 0)
    st = Error::FromErrno("rename " + tmp);
  if (!st) {
    (void)RemoveAll(tmp);
    return st.error();
  }
  (void)FsyncDir(root);
  s.path = root + "/" + id;
  events::Record(store_root, "secret", "create", s.id, s.name);
  return s;
}

Expected<std::vector<SecretInfo>> List(const std::string& store_root) {
  std::vector<SecretInfo> out;
  for (const std::string& id : Ids(store_root))
    if (auto s = Load(store_root, id))
      out.push_back(std::move(*s));
  std::sort(out.begin(), out.end(), [](const SecretInfo& a, const SecretInfo& b) { return a.name < b.name; });
  return out;
}

Expected<SecretInfo> Inspect(const std::string& store_root, const std::string& name_or_id) {
  return Find(store_root, name_or_id);
}

Expected<std::string> ReadValue(const std::string& store_root, const std::string& name_or_id) {
  KILN_ASSIGN_OR_RETURN(SecretInfo s, Find(store_root, name_or_id));
  return ReadFile(s.path + "/data", kMaxSecretBytes);
}

Expected<std::string> Remove(const std::string& store_root, const std::string& name_or_id) {
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, Lock(store_root));
  KILN_ASSIGN_OR_RETURN(SecretInfo s, Find(store_root, name_or_id));
  // Renamed away first, so no reader sees a record without its value.
  std::string gone = Root(store_root) + "/.new-rm-" + s.id;
  if (::rename(s.path.c_str(), gone.c_str()) != 0)
    return Error::FromErrno("rename " + s.path);
  KILN_TRY(RemoveAll(gone));
  events::Record(store_root, "secret", "remove", s.id, s.name);
  return s.id;
}

}  // namespace kiln::secret
