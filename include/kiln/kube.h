// Kubernetes YAML <-> the deployment model (docs/kube.md, docs/compose.md).
// Pure: text in, model out, and the model back as Pod YAML (what `kube
// generate` prints). Kinds: Pod, Deployment (its pod template, one replica as
// podman), ConfigMap, Secret and PersistentVolumeClaim (recorded for the
// pods that use them); any other kind or field is a warning naming it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/deployment.h"
#include "kiln/error.h"

namespace kiln::kube {

struct ConfigMap {
  std::string name;
  std::map<std::string, std::string> data;
};

struct Secret {
  std::string name;
  std::string type;
  /// data (base64, as written) and stringData (plain) keys: the values are
  /// not decoded here; the run side puts the document in the secret store.
  std::map<std::string, std::string> data, string_data;
};

struct PersistentVolumeClaim {
  std::string name;
  std::map<std::string, std::string> annotations;  // volume.podman.io/* options
  std::string storage;                             // resources.requests.storage
};

struct Document {
  std::vector<deployment::Pod> pods;  // Pods and Deployments, in file order
  std::vector<ConfigMap> config_maps;
  std::vector<Secret> secrets;
  std::vector<PersistentVolumeClaim> claims;
  std::vector<std::string> warnings;  // "file:line:column: path: what"
};

/// Reads every document of a kube YAML stream. Errors (kInvalidInput) name
/// file:line:column and the field.
Expected<Document> Parse(std::string_view text, const std::string& file);

/// The pod as Kubernetes Pod YAML (apiVersion v1, kind Pod), keys sorted as
/// kubectl prints them. What has no Pod field (a user name instead of a uid,
/// a tmpfs...) is named in `warnings`.
std::string GeneratePodYaml(const deployment::Pod& pod, std::vector<std::string>* warnings = nullptr);

/// A Secret's keys and values: `data` base64-decoded, `stringData` as is
/// (it wins over `data` for the same key, as the API server merges them).
/// kInvalidInput naming the Secret and key for bad base64.
Expected<std::map<std::string, std::string>> SecretValues(const Secret& secret);

/// What a pod's references resolve against: ConfigMaps and Secrets (their
/// decoded values) by name. The caller fills them from the file, from
/// --configmap files and from kiln's secret store.
struct Sources {
  std::map<std::string, std::map<std::string, std::string>> config_maps, secrets;
};

/// The pod as `kube play` runs it (pure): every env valueFrom
/// configMapKeyRef/secretKeyRef replaced by its value (a missing map, secret
/// or key is kInvalidInput naming the container, variable and reference,
/// unless `optional: true`: then the variable is left out); an exec
/// livenessProbe of `/bin/sh -c SCRIPT` (what GeneratePodYaml writes for a
/// shell health check) becomes that shell check again, so generate -> play
/// -> generate is a fixed point; the restart policy defaults to "always"
/// (Kubernetes' and podman's default). fieldRef is left for the run side to
/// refuse by name.
Expected<deployment::Pod> ResolvePod(const deployment::Pod& pod, const Sources& sources);

/// RFC 1123 label: lower case, [a-z0-9-], at most 63, starting and ending
/// alphanumeric (podman#13985: names with '_' or capitals are refused by
/// Kubernetes).
std::string SanitizeName(const std::string& name);

}  // namespace kiln::kube
