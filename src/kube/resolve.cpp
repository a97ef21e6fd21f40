// What `kube play` does to a parsed pod before running it (pure): env
// valueFrom references resolved against ConfigMaps and Secrets, the probe
// kube generate writes turned back into a shell health check, Kubernetes'
// default restart policy. Secret values decoded here.
#include <array>

#include "kiln/kube.h"

namespace kiln::kube {

namespace {

/// RFC 4648 base64 (the API server's encoding of Secret data); whitespace
/// is skipped, padding optional; nullopt for anything else.
std::optional<std::string> DecodeBase64(const std::string& text) {
  static const std::array<int, 256> kValue = [] {
    std::array<int, 256> v{};
    v.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i)
      v[static_cast<unsigned char>(alphabet[i])] = i;
    return v;
  }();
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char ch : text) {
    if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
      continue;
    if (ch == '=') {
      ++pad;
      continue;
    }
    int v = kValue[static_cast<unsigned char>(ch)];
    if (v < 0 || pad > 0)
      return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2 || bits >= 6)
    return std::nullopt;
  return out;
}

}  // namespace

Expected<std::map<std::string, std::string>> SecretValues(const Secret& secret) {
  std::map<std::string, std::string> out;
  for (const auto& [key, encoded] : secret.data) {
    auto decoded = DecodeBase64(encoded);
    if (!decoded)
      return Error(Errc::kInvalidInput, "Secret " + secret.name + ": data." + key + ": not base64");
    out[key] = *decoded;
  }
  for (const auto& [key, value] : secret.string_data)
    out[key] = value;
  return out;
}

Expected<deployment::Pod> ResolvePod(const deployment::Pod& pod, const Sources& sources) {
  deployment::Pod out = pod;
  if (out.restart_policy.empty())
    out.restart_policy = "always";
  for (auto& c : out.containers) {
    std::vector<deployment::EnvVar> env;
    for (auto& e : c.environment) {
      if (!e.from || (e.from->kind != "configMapKeyRef" && e.from->kind != "secretKeyRef")) {
        env.push_back(e);
        continue;
      }
      const deployment::EnvSource& ref = *e.from;
      bool is_map = ref.kind == "configMapKeyRef";
      const auto& table = is_map ? sources.config_maps : sources.secrets;
      std::string what = (is_map ? "ConfigMap " : "Secret ") + ref.name;
      auto source = table.find(ref.name);
      std::string missing;
      if (source == table.end()) {
        missing = "no " + what + (is_map ? " (in the file or --configmap)" : " (in the file or kiln's secret store)");
      } else if (auto kv = source->second.find(ref.key); kv != source->second.end()) {
        env.push_back({e.name, kv->second, std::nullopt});
        continue;
      } else {
        missing = "no key " + ref.key + " in " + what;
      }
      if (ref.optional.value_or(false))
        continue;
      return Error(Errc::kInvalidInput, "pod " + pod.name + ": container " + c.name + ": env " + e.name + ": " +
                                            ref.kind + ": " + missing);
    }
    c.environment = std::move(env);
    if (c.healthcheck && c.healthcheck->test.size() == 4 && c.healthcheck->test[0] == "CMD" &&
        c.healthcheck->test[1] == "/bin/sh" && c.healthcheck->test[2] == "-c")
      c.healthcheck->test = {"CMD-SHELL", c.healthcheck->test[3]};
  }
  return out;
}

}  // namespace kiln::kube
