// Secrets kept in the store for `run --secret` and `build --secret id=NAME`
// (docs/secrets.md): `kiln secret create/ls/inspect/rm/exists` as podman's,
// values 0600 under <store>/secrets, never printed by ls or inspect.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kiln/error.h"

namespace kiln::secret {

struct SecretInfo {
  std::string id;    ///< 25 hex digits, as podman's
  std::string name;  ///< [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 253
  std::string driver = "file";
  std::string created;  ///< RFC 3339
  std::string updated;
  std::map<std::string, std::string> labels;
  std::string path;  ///< the directory that holds it (podman's Driver.Options.path)
};

/// The most a secret may hold: podman's limit.
constexpr size_t kMaxSecretBytes = 512000;

struct CreateOptions {
  std::map<std::string, std::string> labels;
  /// Replace the value of an existing secret of that name (keeps its ID and
  /// created time); otherwise an existing name is kInvalidInput.
  bool replace = false;
};

/// Stores `value` under `name` in <store_root>/secrets. kInvalidInput for a
/// bad name, an empty or too large value, or a name in use.
Expected<SecretInfo> Create(const std::string& store_root, const std::string& name, const std::string& value,
                            const CreateOptions& options);

/// Every secret, by name.
Expected<std::vector<SecretInfo>> List(const std::string& store_root);

/// By name, full ID or a unique ID prefix. kNotFound: `no such secret: X`.
Expected<SecretInfo> Inspect(const std::string& store_root, const std::string& name_or_id);

/// The stored value. kNotFound as Inspect.
Expected<std::string> ReadValue(const std::string& store_root, const std::string& name_or_id);

/// Removes it and returns its ID. kNotFound as Inspect.
Expected<std::string> Remove(const std::string& store_root, const std::string& name_or_id);

}  // namespace kiln::secret
