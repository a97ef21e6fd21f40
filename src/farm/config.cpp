// Farm configuration (farms.json), node URLs and the ssh command line.

#include <nlohmann/json.hpp>

#include "kiln/farm.h"
#include "kiln/fs.h"
#include "kiln/text.h"

namespace kiln::farm {

using nlohmann::json;

const Farm* Config::Find(std::string_view name) const {
  for (const auto& f : farms)
    if (f.name == name)
      return &f;
  return nullptr;
}

Farm* Config::Find(std::string_view name) {
  return const_cast<Farm*>(static_cast<const Config*>(this)->Find(name));
}

std::string ConfigPath() { return JoinPath(UserConfigDir(), "kiln/farms.json"); }

Expected<Config> LoadConfig(const std::string& path) {
  Config config;
  if (!PathExists(path))
    return config;
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1 << 20));
  auto bad = [&](const std::string& why) { return Error(Errc::kInvalidInput, path + ": " + why); };
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return bad("not a JSON object (fix or remove the file)");
  try {
    config.default_farm = doc.value("default", "");
    for (const auto& f : doc.value("farms", json::array())) {
      Farm farm;
      farm.name = f.at("name").get<std::string>();
      farm.driver = f.value("driver", "ssh");
      if (farm.driver != "ssh" && farm.driver != "kubernetes")
        return bad("farm " + farm.name + ": unknown driver " + farm.driver);
      if (f.contains("kubernetes")) {
        const json& k = f["kubernetes"];
        farm.kube.namespace_name = k.value("namespace", "");
        farm.kube.image = k.value("image", "");
        farm.kube.node_selector = k.value("nodeselector", std::vector<std::string>{});
        farm.kube.kubeconfig = k.value("kubeconfig", "");
        farm.kube.context = k.value("context", "");
        farm.kube.registry_secret = k.value("secret", "");
      }
      for (const auto& n : f.value("nodes", json::array())) {
        Node node;
        node.url = n.at("url").get<std::string>();
        node.identity = n.value("identity", "");
        node.kiln = n.value("kiln", "kiln");
        node.ssh_options = n.value("ssh_options", std::vector<std::string>{});
        if (auto u = ParseNodeUrl(node.url); !u)
          return bad("farm " + farm.name + ": " + u.error().message());
        farm.nodes.push_back(std::move(node));
      }
      config.farms.push_back(std::move(farm));
    }
  } catch (const json::exception& e) {
    return bad(std::string("unexpected content: ") + e.what());
  }
  return config;
}

Status SaveConfig(const std::string& path, const Config& config) {
  json farms = json::array();
  for (const auto& f : config.farms) {
    json nodes = json::array();
    for (const auto& n : f.nodes) {
      json node = {{"url", n.url}};
      if (!n.identity.empty())
        node["identity"] = n.identity;
      if (n.kiln != "kiln")
        node["kiln"] = n.kiln;
      if (!n.ssh_options.empty())
        node["ssh_options"] = n.ssh_options;
      nodes.push_back(std::move(node));
    }
    json farm = {{"name", f.name}, {"nodes", std::move(nodes)}};
    if (f.driver != "ssh") {
      farm["driver"] = f.driver;
      farm["kubernetes"] = {{"namespace", f.kube.namespace_name}, {"image", f.kube.image},
                            {"nodeselector", f.kube.node_selector}, {"kubeconfig", f.kube.kubeconfig},
                            {"context", f.kube.context}, {"secret", f.kube.registry_secret}};
    }
    farms.push_back(std::move(farm));
  }
  json doc = {{"default", config.default_farm}, {"farms", std::move(farms)}};
  KILN_TRY(MakeDirs(DirName(path), 0700));
  return WriteFileAtomic(path, doc.dump(2) + "\n", 0600);
}

Status ApplyDriverOpt(KubeSettings& kube, std::string_view opt) {
  auto eq = opt.find('=');
  std::string key(opt.substr(0, eq));
  std::string value(eq == std::string_view::npos ? std::string_view() : opt.substr(eq + 1));
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidInput, "--driver-opt " + std::string(opt) + ": " + why);
  };
  if (eq == std::string_view::npos || value.empty())
    return bad("expected KEY=VALUE");
  if (key == "namespace") {
    kube.namespace_name = value;
  } else if (key == "image") {
    kube.image = value;
  } else if (key == "kubeconfig") {
    kube.kubeconfig = value;
  } else if (key == "context") {
    kube.context = value;
  } else if (key == "secret") {
    kube.registry_secret = value;
  } else if (key == "nodeselector") {
    kube.node_selector.clear();
    size_t start = 0;
    while (start <= value.size()) {
      size_t end = value.find(';', start);
      std::string pair = value.substr(start, end == std::string::npos ? std::string::npos : end - start);
      auto e = pair.find('=');
      if (e == std::string::npos || e == 0)
        return bad("nodeselector takes LABEL=VALUE pairs separated by ';'");
      if (pair.substr(0, e) == "kubernetes.io/arch" || pair.substr(0, e) == "kubernetes.io/os")
        return bad(pair.substr(0, e) + " is set per Job from its platform");
      kube.node_selector.push_back(pair);
      if (end == std::string::npos)
        break;
      start = end + 1;
    }
  } else {
    return bad("unknown key " + key + " (namespace, image, nodeselector, kubeconfig, context, secret)");
  }
  return Ok();
}

Expected<SshUrl> ParseNodeUrl(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidInput, "node " + std::string(url) + ": " + why +
                                          " (expected ssh://[USER@]HOST[:PORT])");
  };
  constexpr std::string_view kScheme = "ssh://";
  if (url.substr(0, kScheme.size()) != kScheme)
    return bad("not an ssh:// URL");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("/?#") != std::string_view::npos)
    return bad("a path, query or fragment is not used");
  SshUrl out;
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    out.user = std::string(rest.substr(0, at));
    rest = rest.substr(at + 1);
    if (out.user.empty())
      return bad("empty user");
  }
  std::string_view host = rest;
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    auto close = rest.find(']');
    if (close == std::string_view::npos)
      return bad("unclosed [");
    host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return bad("text after ]");
  } else if (auto colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    rest = rest.substr(colon);
  } else {
    rest = {};
  }
  if (host.empty())
    return bad("no host");
  for (char c : host)
    if (static_cast<unsigned char>(c) <= ' ' || c == '\'' || c == '"' || c == '\\')
      return bad("bad character in the host");
  if (host.front() == '-')
    return bad("a host may not start with '-'");
  out.host = std::string(host);
  if (!rest.empty()) {
    std::string_view port = rest.substr(1);
    if (port.empty() || port.size() > 5)
      return bad("bad port");
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9')
        return bad("bad port");
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535)
      return bad("port out of range");
    out.port = p;
  }
  return out;
}

std::vector<std::string> SshArgv(const Node& node, const std::string& remote_command) {
  std::vector<std::string> argv = {"ssh", "-o", "BatchMode=yes", "-T"};
  for (const auto& o : node.ssh_options) {
    argv.push_back("-o");
    argv.push_back(o);
  }
  if (!node.identity.empty()) {
    argv.push_back("-i");
    argv.push_back(node.identity);
  }
  auto url = ParseNodeUrl(node.url);
  std::string dest = url ? (url->user.empty() ? url->host : url->user + "@" + url->host) : node.url;
  if (url && url->port) {
    argv.push_back("-p");
    argv.push_back(std::to_string(url->port));
  }
  argv.push_back("--");
  argv.push_back(dest);
  argv.push_back(remote_command);
  return argv;
}

}  // namespace kiln::farm
