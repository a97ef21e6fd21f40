// `kiln import`: a rootfs tar -> a single-layer image; --change parsing.
#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "kiln/transport.h"
#include "store/ingest.h"

namespace kiln {

namespace {

Error BadChange(std::string_view instr, const std::string& why) {
  return Error(Errc::kInvalidInput, "invalid --change \"" + std::string(instr) + "\": " + why);
}

/// Shell-like words: whitespace separated, "..." and '...' quoting,
/// backslash escapes outside single quotes.
Expected<std::vector<std::string>> Words(std::string_view s, std::string_view instr) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < s.size()) {
        cur += s[++i];
      } else {
        cur += c;
      }
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word)
        out.push_back(std::move(cur)), cur.clear(), in_word = false;
      continue;
    }
    in_word = true;
    if (c == '"' || c == '\'')
      quote = c;
    else if (c == '\\' && i + 1 < s.size())
      cur += s[++i];
    else
      cur += c;
  }
  if (quote)
    return BadChange(instr, "unterminated quote");
  if (in_word)
    out.push_back(std::move(cur));
  return out;
}

/// JSON array of strings, or nullopt when `s` is not one (shell form).
std::optional<std::vector<std::string>> JsonArray(std::string_view s) {
  if (s.empty() || s.front() != '[')
    return std::nullopt;
  try {
    auto j = nlohmann::json::parse(s);
    if (!j.is_array())
      return std::nullopt;
    std::vector<std::string> out;
    for (const auto& e : j) {
      if (!e.is_string())
        return std::nullopt;
      out.push_back(e.get<std::string>());
    }
    return out;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::vector<std::string> CommandForm(std::string_view args, const ContainerConfig& cfg) {
  if (auto arr = JsonArray(args))
    return *arr;
  std::vector<std::string> cmd = cfg.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : cfg.shell;
  cmd.emplace_back(args);
  return cmd;
}

Status KeyValues(std::string_view args, std::string_view instr, bool env_legacy,
                 const std::function<void(const std::string&, const std::string&)>& set) {
  KILN_ASSIGN_OR_RETURN(auto words, Words(args, instr));
  if (words.empty())
    return BadChange(instr, "missing KEY=VALUE");
  if (words[0].find('=') == std::string::npos) {
    if (!env_legacy || words.size() < 2)
      return BadChange(instr, "expected KEY=VALUE");
    // Legacy "ENV KEY some value": the rest of the line is the value.
    std::string_view rest = args;
    rest.remove_prefix(std::min(rest.size(), rest.find(words[0]) + words[0].size()));
    while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front())))
      rest.remove_prefix(1);
    set(words[0], std::string(rest));
    return Ok();
  }
  for (const auto& w : words) {
    auto eq = w.find('=');
    if (eq == std::string::npos || eq == 0)
      return BadChange(instr, "expected KEY=VALUE, got \"" + w + "\"");
    set(w.substr(0, eq), w.substr(eq + 1));
  }
  return Ok();
}

}  // namespace

Status ApplyConfigChange(ContainerConfig& cfg, std::string_view instr) {
  std::string_view s = instr;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  auto sp = s.find_first_of(" \t");
  std::string keyword(s.substr(0, sp));
  std::string_view args = sp == std::string_view::npos ? std::string_view() : s.substr(sp + 1);
  while (!args.empty() && std::isspace(static_cast<unsigned char>(args.front())))
    args.remove_prefix(1);
  for (char& c : keyword)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (keyword.empty())
    return BadChange(instr, "empty instruction");
  if (args.empty())
    return BadChange(instr, keyword + " needs an argument");

  if (keyword == "CMD") {
    cfg.cmd = CommandForm(args, cfg);
  } else if (keyword == "ENTRYPOINT") {
    cfg.entrypoint = CommandForm(args, cfg);
  } else if (keyword == "SHELL") {
    auto arr = JsonArray(args);
    if (!arr || arr->empty())
      return BadChange(instr, "SHELL needs a JSON array");
    cfg.shell = *arr;
  } else if (keyword == "ENV") {
    KILN_TRY(KeyValues(args, instr, true, [&](const std::string& k, const std::string& v) { cfg.SetEnv(k, v); }));
  } else if (keyword == "LABEL") {
    KILN_TRY(KeyValues(args, instr, false, [&](const std::string& k, const std::string& v) { cfg.labels[k] = v; }));
  } else if (keyword == "WORKDIR") {
    cfg.working_dir = std::string(args);
  } else if (keyword == "USER") {
    cfg.user = std::string(args);
  } else if (keyword == "STOPSIGNAL") {
    cfg.stop_signal = std::string(args);
  } else if (keyword == "ONBUILD") {
    cfg.on_build.emplace_back(args);
  } else if (keyword == "EXPOSE") {
    KILN_ASSIGN_OR_RETURN(auto ports, Words(args, instr));
    for (auto p : ports) {
      auto slash = p.find('/');
      std::string num = p.substr(0, slash);
      std::string proto = slash == std::string::npos ? "tcp" : p.substr(slash + 1);
      for (char& c : proto)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      bool digits = !num.empty() && std::all_of(num.begin(), num.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == '-';
      });
      if (!digits || (proto != "tcp" && proto != "udp" && proto != "sctp"))
        return BadChange(instr, "invalid port \"" + p + "\"");
      std::string port = num + "/" + proto;
      if (std::find(cfg.exposed_ports.begin(), cfg.exposed_ports.end(), port) == cfg.exposed_ports.end())
        cfg.exposed_ports.push_back(port);
    }
    std::sort(cfg.exposed_ports.begin(), cfg.exposed_ports.end());
  } else if (keyword == "VOLUME") {
    std::vector<std::string> vols;
    if (auto arr = JsonArray(args)) {
      vols = *arr;
    } else {
      KILN_ASSIGN_OR_RETURN(vols, Words(args, instr));
    }
    for (const auto& v : vols) {
      if (v.empty() || v[0] != '/')
        return BadChange(instr, "volume \"" + v + "\" is not an absolute path");
      if (std::find(cfg.volumes.begin(), cfg.volumes.end(), v) == cfg.volumes.end())
        cfg.volumes.push_back(v);
    }
    std::sort(cfg.volumes.begin(), cfg.volumes.end());
  } else {
    return BadChange(instr, "unsupported instruction " + keyword +
                                " (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, "
                                "VOLUME, WORKDIR)");
  }
  return Ok();
}

Expected<Descriptor> ImportRootfsTar(Store& store, int fd, const ImportOptions& options) {
  ImageConfig config;
  config.set_platform(options.platform.value_or(Platform::Host()));
  config.created = NowRfc3339();
  for (const auto& change : options.changes)
    KILN_TRY(ApplyConfigChange(config.config, change));
  if (!config.config.GetEnv("PATH"))
    config.config.env.insert(config.config.env.begin(),
                             "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

  KILN_ASSIGN_OR_RETURN(auto ingester, store_internal::LayerIngester::Create(store));
  std::string head;
  KILN_TRY(store_internal::DecompressFd(fd, [&](std::string_view data) -> Status {
    if (head.size() < 512)
      head.append(data.substr(0, 512 - head.size()));
    return ingester->Write(data);
  }));
  // A tar's first block is a header with the "ustar" magic (or, for an
  // empty archive, zeros).
  bool zeros = head.size() == 512 && head.find_first_not_of('\0') == std::string::npos;
  if (head.size() < 512 || (!zeros && head.compare(257, 5, "ustar") != 0))
    return Error(Errc::kInvalidInput, "input is not a tar archive");
  KILN_ASSIGN_OR_RETURN(auto layer, ingester->Finish());
  config.diff_ids = {layer.diff_id};
  HistoryEntry h;
  h.created = config.created;
  h.created_by = "kiln import";
  h.comment = options.message.empty() ? "imported from tarball" : options.message;
  config.history.push_back(std::move(h));
  return store.WriteImage(config, {layer.blob});
}

}  // namespace kiln
