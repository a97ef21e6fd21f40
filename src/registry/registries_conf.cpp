// containers-registries.conf(5) v2 (include/kiln/registries_conf.h).
//
// TOML through toml++ (Debian libtomlplusplus-dev), used header-only in this
// one file so that kiln needs no extra shared library at run time.
#define TOML_HEADER_ONLY 1
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

#include "kiln/registries_conf.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "kiln/fs.h"
#include "kiln/log.h"

namespace kiln::registry {
namespace {

Error Bad(const std::string& file, const std::string& what) {
  return Error(Errc::kInvalidInput, file + ": " + what);
}

Error BadAt(const std::string& file, const toml::node& node, const std::string& what) {
  const auto& src = node.source();
  std::string where = file;
  if (src.begin.line > 0)
    where += ":" + std::to_string(src.begin.line);
  return Error(Errc::kInvalidInput, where + ": " + what);
}

Expected<std::string> GetString(const std::string& file, const toml::table& t, std::string_view key,
                                const std::string& where) {
  const toml::node* n = t.get(key);
  if (!n)
    return std::string();
  if (!n->is_string())
    return BadAt(file, *n, where + std::string(key) + " must be a string");
  return std::string(n->as_string()->get());
}

Expected<std::optional<bool>> GetBool(const std::string& file, const toml::table& t, std::string_view key,
                                      const std::string& where) {
  const toml::node* n = t.get(key);
  if (!n)
    return std::optional<bool>();
  if (!n->is_boolean())
    return BadAt(file, *n, where + std::string(key) + " must be true or false");
  return std::optional<bool>(n->as_boolean()->get());
}

Expected<std::vector<std::string>> GetStrings(const std::string& file, const toml::node& n,
                                              const std::string& what) {
  const toml::array* a = n.as_array();
  if (!a)
    return BadAt(file, n, what + " must be an array of strings");
  std::vector<std::string> out;
  for (const auto& e : *a) {
    if (!e.is_string())
      return BadAt(file, e, what + " must be an array of strings");
    out.emplace_back(e.as_string()->get());
  }
  return out;
}

// "host[:port][/path]" without a scheme, tag or digest.
Status CheckLocation(const std::string& file, const toml::node& at, const std::string& what,
                     const std::string& loc) {
  if (loc.find("://") != std::string::npos)
    return BadAt(file, at, what + " \"" + loc + "\" must not have a scheme (write host[:port][/path]; "
                                  "use insecure = true for plain HTTP)");
  if (loc.empty() || loc.back() == '/' || loc.find('@') != std::string::npos)
    return BadAt(file, at, what + " \"" + loc + "\" is not host[:port][/path]");
  return Ok();
}

bool ValidPullFromMirror(const std::string& v) {
  return v.empty() || v == "all" || v == "digest-only" || v == "tag-only";
}

Expected<RegistryConf> ParseRegistry(const std::string& file, const toml::table& t, size_t index) {
  std::string where = "[[registry]] #" + std::to_string(index + 1) + ": ";
  static const char* const kKeys[] = {"prefix", "location", "insecure", "blocked", "mirror-by-digest-only",
                                      "mirror"};
  for (const auto& [k, v] : t)
    if (std::find(std::begin(kKeys), std::end(kKeys), k.str()) == std::end(kKeys))
      return BadAt(file, v, where + "unknown key \"" + std::string(k.str()) + "\"");
  RegistryConf r;
  r.file = file;
  KILN_ASSIGN_OR_RETURN(r.prefix, GetString(file, t, "prefix", where));
  KILN_ASSIGN_OR_RETURN(r.location, GetString(file, t, "location", where));
  // Errors point at the key's own line.
  const toml::node& prefix_at = t.get("prefix") ? *t.get("prefix") : static_cast<const toml::node&>(t);
  const toml::node& location_at = t.get("location") ? *t.get("location") : static_cast<const toml::node&>(t);
  if (!r.location.empty())
    KILN_TRY(CheckLocation(file, location_at, where + "location", r.location));
  KILN_ASSIGN_OR_RETURN(auto insecure, GetBool(file, t, "insecure", where));
  KILN_ASSIGN_OR_RETURN(auto blocked, GetBool(file, t, "blocked", where));
  KILN_ASSIGN_OR_RETURN(auto by_digest, GetBool(file, t, "mirror-by-digest-only", where));
  r.insecure = insecure.value_or(false);
  r.blocked = blocked.value_or(false);
  r.mirror_by_digest_only = by_digest.value_or(false);
  if (r.prefix.empty())
    r.prefix = r.location;
  if (r.prefix.empty())
    return BadAt(file, t, where + "needs a prefix or a location");
  if (r.prefix.rfind("*.", 0) == 0) {
    if (r.prefix.find_first_of("/:@") != std::string::npos)
      return BadAt(file, prefix_at, where + "wildcard prefix \"" + r.prefix + "\" must be \"*.domain\" only");
    if (!r.location.empty())
      return BadAt(file, t, where + "a wildcard prefix (\"" + r.prefix + "\") cannot have a location");
  } else {
    KILN_TRY(CheckLocation(file, prefix_at, where + "prefix", r.prefix));
  }
  if (const toml::node* m = t.get("mirror")) {
    const toml::array* arr = m->as_array();
    if (!arr)
      return BadAt(file, *m, where + "mirror must be [[registry.mirror]] tables");
    for (const auto& e : *arr) {
      const toml::table* mt = e.as_table();
      if (!mt)
        return BadAt(file, e, where + "mirror must be [[registry.mirror]] tables");
      for (const auto& [k, v] : *mt)
        if (k.str() != "location" && k.str() != "insecure" && k.str() != "pull-from-mirror")
          return BadAt(file, v, where + "mirror: unknown key \"" + std::string(k.str()) + "\"");
      MirrorConf mc;
      KILN_ASSIGN_OR_RETURN(mc.location, GetString(file, *mt, "location", where + "mirror "));
      KILN_ASSIGN_OR_RETURN(auto mi, GetBool(file, *mt, "insecure", where + "mirror "));
      KILN_ASSIGN_OR_RETURN(mc.pull_from_mirror, GetString(file, *mt, "pull-from-mirror", where + "mirror "));
      mc.insecure = mi.value_or(false);
      KILN_TRY(CheckLocation(file, e, where + "mirror location", mc.location));
      if (!ValidPullFromMirror(mc.pull_from_mirror))
        return BadAt(file, e, where + "pull-from-mirror \"" + mc.pull_from_mirror +
                                  "\": use all, digest-only or tag-only");
      if (r.mirror_by_digest_only && !mc.pull_from_mirror.empty() && mc.pull_from_mirror != "digest-only")
        return BadAt(file, e, where + "mirror-by-digest-only = true conflicts with pull-from-mirror = \"" +
                                  mc.pull_from_mirror + "\"");
      r.mirrors.push_back(std::move(mc));
    }
  }
  return r;
}

// A version-1 file: [registries.search] registries = [...], and the same for
// insecure and block.
Expected<RegistriesConf> ParseV1(const std::string& file, const toml::table& regs) {
  RegistriesConf c;
  auto list = [&](std::string_view section) -> Expected<std::vector<std::string>> {
    const toml::node* s = regs.get(section);
    if (!s)
      return std::vector<std::string>();
    const toml::table* st = s->as_table();
    const toml::node* r = st ? st->get("registries") : nullptr;
    if (!r)
      return std::vector<std::string>();
    return GetStrings(file, *r, "[registries." + std::string(section) + "] registries");
  };
  KILN_ASSIGN_OR_RETURN(auto search, list("search"));
  KILN_ASSIGN_OR_RETURN(auto insecure, list("insecure"));
  KILN_ASSIGN_OR_RETURN(auto block, list("block"));
  if (regs.get("search")) {
    c.search = search;
    c.search_file = file;
  }
  auto entry = [&](const std::string& loc) -> RegistryConf& {
    for (auto& r : c.registries)
      if (r.prefix == loc)
        return r;
    RegistryConf r;
    r.prefix = r.location = loc;
    r.file = file;
    c.registries.push_back(std::move(r));
    return c.registries.back();
  };
  for (const auto& l : insecure)
    entry(l).insecure = true;
  for (const auto& l : block)
    entry(l).blocked = true;
  return c;
}

}  // namespace

Expected<RegistriesConf> ParseRegistriesConf(std::string_view text, const std::string& file) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    std::string where = file;
    if (e.source().begin.line > 0)
      where += ":" + std::to_string(e.source().begin.line);
    return Error(Errc::kInvalidInput, where + ": " + std::string(e.description()));
  }
  RegistriesConf c;
  c.files.push_back(file);
  bool v2 = false;
  const toml::table* v1 = nullptr;
  for (const auto& [k, v] : root) {
    std::string_view key = k.str();
    if (key == "registries") {
      v1 = v.as_table();
      if (!v1)
        return BadAt(file, v, "registries must be a table ([registries.search] of the version-1 format)");
      continue;
    }
    v2 = true;
    if (key == "unqualified-search-registries") {
      KILN_ASSIGN_OR_RETURN(auto s, GetStrings(file, v, "unqualified-search-registries"));
      c.search = std::move(s);
      c.search_file = file;
    } else if (key == "short-name-mode") {
      if (!v.is_string())
        return BadAt(file, v, "short-name-mode must be a string");
      std::string m(v.as_string()->get());
      if (m == "enforcing")
        c.short_name_mode = ShortNameMode::kEnforcing;
      else if (m == "permissive")
        c.short_name_mode = ShortNameMode::kPermissive;
      else if (m == "disabled")
        c.short_name_mode = ShortNameMode::kDisabled;
      else if (!m.empty())
        return BadAt(file, v, "short-name-mode \"" + m + "\": use enforcing, permissive or disabled");
    } else if (key == "aliases") {
      const toml::table* at = v.as_table();
      if (!at)
        return BadAt(file, v, "[aliases] must be a table");
      for (const auto& [ak, av] : *at) {
        if (!av.is_string())
          return BadAt(file, av, "alias \"" + std::string(ak.str()) + "\" must be a string");
        std::string target(av.as_string()->get());
        auto ref = ImageReference::Parse(target);
        std::string last = target.substr(target.rfind('/') + 1);
        if (!ref || ref->implicit_domain || target.find('@') != std::string::npos ||
            last.find(':') != std::string::npos)
          return BadAt(file, av, "alias \"" + std::string(ak.str()) + "\" = \"" + target +
                                     "\": the value must be a fully qualified name without tag or digest");
        c.aliases[std::string(ak.str())] = {ref->Name(), file};
      }
    } else if (key == "registry") {
      const toml::array* arr = v.as_array();
      if (!arr)
        return BadAt(file, v, "registry must be [[registry]] tables");
      size_t i = 0;
      for (const auto& e : *arr) {
        const toml::table* t = e.as_table();
        if (!t)
          return BadAt(file, e, "registry must be [[registry]] tables");
        KILN_ASSIGN_OR_RETURN(RegistryConf r, ParseRegistry(file, *t, i++));
        for (auto& old : c.registries)
          if (old.prefix == r.prefix)
            return BadAt(file, e, "[[registry]] prefix \"" + r.prefix + "\" is defined twice");
        c.registries.push_back(std::move(r));
      }
    } else if (key == "credential-helpers" || key == "additional-layer-store-auth-helper") {
      LogDebug(file + ": " + std::string(key) + " is not used by kiln (it reads auth.json files)");
    } else {
      return BadAt(file, v, "unknown key \"" + std::string(key) + "\"");
    }
  }
  if (v1) {
    if (v2)
      return Bad(file, "mixes the version-1 [registries.*] tables with version-2 keys");
    KILN_ASSIGN_OR_RETURN(RegistriesConf old, ParseV1(file, *v1));
    old.files = c.files;
    return old;
  }
  return c;
}

void MergeRegistriesConf(RegistriesConf& into, RegistriesConf later) {
  if (later.search) {
    into.search = std::move(later.search);
    into.search_file = std::move(later.search_file);
  }
  if (later.short_name_mode)
    into.short_name_mode = later.short_name_mode;
  for (auto& [k, v] : later.aliases)
    into.aliases[k] = std::move(v);
  for (auto& r : later.registries) {
    auto it = std::find_if(into.registries.begin(), into.registries.end(),
                           [&](const RegistryConf& o) { return o.prefix == r.prefix; });
    if (it != into.registries.end())
      *it = std::move(r);
    else
      into.registries.push_back(std::move(r));
  }
  for (auto& f : later.files)
    into.files.push_back(std::move(f));
}

std::vector<std::string> RegistriesConfFiles() {
  auto exists = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
  };
  const char* env = std::getenv("CONTAINERS_REGISTRIES_CONF");
  const char* home_env = std::getenv("HOME");
  std::string home = home_env ? home_env : "";
  std::string user_file = home.empty() ? "" : home + "/.config/containers/registries.conf";
  std::string user_dir = home.empty() ? "" : home + "/.config/containers/registries.conf.d";
  std::vector<std::string> files;
  std::vector<std::string> dirs;
  if (env && *env) {
    files.push_back(env);
    dirs = {"/etc/containers/registries.conf.d", user_dir};
  } else if (!user_file.empty() && exists(user_file)) {
    files.push_back(user_file);
    dirs = {user_dir};
  } else {
    files.push_back("/etc/containers/registries.conf");
    dirs = {"/etc/containers/registries.conf.d", user_dir};
  }
  for (const auto& d : dirs) {
    if (d.empty())
      continue;
    auto names = ListDirSorted(d);
    if (!names)
      continue;
    for (const auto& n : *names)
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".conf") == 0) {
        struct stat st;
        std::string p = d + "/" + n;
        if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode))
          files.push_back(p);
      }
  }
  return files;
}

Expected<RegistriesConf> LoadRegistriesConf() {
  static std::mutex mu;
  static std::optional<Expected<RegistriesConf>> cached;
  std::lock_guard<std::mutex> lock(mu);
  if (cached)
    return *cached;
  auto load = []() -> Expected<RegistriesConf> {
    RegistriesConf all;
    for (const auto& f : RegistriesConfFiles()) {
      auto text = ReadFile(f, 4 << 20);
      if (!text) {
        if (text.error().code() == Errc::kNotFound)
          continue;
        return std::move(text).error().WithContext("registries configuration " + f);
      }
      KILN_ASSIGN_OR_RETURN(RegistriesConf c, ParseRegistriesConf(*text, f));
      LogDebug("registries configuration: read " + f);
      MergeRegistriesConf(all, std::move(c));
    }
    return all;
  };
  cached = load();
  return *cached;
}

namespace {

// containers/image's refMatchingPrefix: the length of the match, or -1.
int MatchPrefix(std::string_view name, std::string_view prefix) {
  if (prefix.rfind("*.", 0) == 0) {
    std::string_view host = name.substr(0, name.find('/'));
    size_t colon = host.find(':');
    if (colon != std::string_view::npos)
      host = host.substr(0, colon);
    std::string_view suffix = prefix.substr(1);  // ".domain"
    if (host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix)
      return static_cast<int>(prefix.size());
    return -1;
  }
  if (name.size() < prefix.size() || name.substr(0, prefix.size()) != prefix)
    return -1;
  if (name.size() == prefix.size())
    return static_cast<int>(prefix.size());
  char c = name[prefix.size()];
  return c == '/' || c == ':' || c == '@' ? static_cast<int>(prefix.size()) : -1;
}

// `ref` with its name's `prefix` replaced by `location`.
Expected<ImageReference> Rewrite(const ImageReference& ref, const std::string& prefix,
                                 const std::string& location) {
  std::string name = ref.Name();
  std::string text = location + name.substr(prefix.size());
  if (!ref.tag.empty())
    text += ":" + ref.tag;
  if (ref.digest.valid())
    text += "@" + ref.digest.str();
  auto out = ImageReference::ParseWithDefaultDomain(text, "localhost");
  if (!out)
    return std::move(out).error().WithContext("rewriting " + ref.str() + " for location " + location);
  out->implicit_domain = false;
  return out;
}

}  // namespace

const RegistryConf* FindRegistry(const RegistriesConf& conf, std::string_view name) {
  const RegistryConf* best = nullptr;
  int best_len = -1;
  bool best_wild = true;
  for (const auto& r : conf.registries) {
    bool wild = r.prefix.rfind("*.", 0) == 0;
    int len = MatchPrefix(name, r.prefix);
    if (len < 0)
      continue;
    // A plain prefix beats any wildcard; then the longest wins.
    if (!best || (best_wild && !wild) || (best_wild == wild && len > best_len)) {
      best = &r;
      best_len = len;
      best_wild = wild;
    }
  }
  return best;
}

Expected<std::vector<PullSource>> PullSources(const RegistriesConf& conf, const ImageReference& ref) {
  const RegistryConf* r = FindRegistry(conf, ref.Name());
  if (!r)
    return std::vector<PullSource>{PullSource{ref, false, false}};
  if (r->blocked)
    return Error(Errc::kFailed, "registry " + ref.domain + " is blocked in " + r->file + " ([[registry]] prefix \"" +
                                    r->prefix + "\"): refusing to pull " + ref.str());
  std::string prefix = r->prefix.rfind("*.", 0) == 0 ? ref.domain : r->prefix;
  std::vector<PullSource> out;
  const bool by_digest = ref.digest.valid();
  for (const auto& m : r->mirrors) {
    std::string mode = m.pull_from_mirror.empty() ? (r->mirror_by_digest_only ? "digest-only" : "all")
                                                  : m.pull_from_mirror;
    if ((mode == "digest-only" && !by_digest) || (mode == "tag-only" && by_digest))
      continue;
    KILN_ASSIGN_OR_RETURN(ImageReference mr, Rewrite(ref, prefix, m.location));
    out.push_back(PullSource{std::move(mr), m.insecure, true});
  }
  ImageReference primary = ref;
  if (!r->location.empty() && r->location != prefix) {
    KILN_ASSIGN_OR_RETURN(primary, Rewrite(ref, prefix, r->location));
  }
  out.push_back(PullSource{std::move(primary), r->insecure, false});
  return out;
}

Expected<bool> PushInsecure(const RegistriesConf& conf, const ImageReference& ref) {
  const RegistryConf* r = FindRegistry(conf, ref.Name());
  if (!r)
    return false;
  if (r->blocked)
    return Error(Errc::kFailed, "registry " + ref.domain + " is blocked in " + r->file + " ([[registry]] prefix \"" +
                                    r->prefix + "\"): refusing to push " + ref.str());
  return r->insecure;
}

Expected<ShortNameResolution> ResolveShortName(const RegistriesConf& conf, const ImageReference& ref) {
  ShortNameResolution out;
  if (!ref.implicit_domain) {
    out.candidates.push_back(ref);
    return out;
  }
  // The name as written: implicit docker.io names carry "library/".
  std::string shortname = ref.path;
  if (ref.domain == "docker.io" && shortname.rfind("library/", 0) == 0 &&
      shortname.find('/', 8) == std::string::npos)
    shortname = shortname.substr(8);
  auto suffix = [&]() {
    std::string s;
    if (!ref.tag.empty())
      s += ":" + ref.tag;
    if (ref.digest.valid())
      s += "@" + ref.digest.str();
    return s;
  };
  const ShortNameMode mode = conf.short_name_mode.value_or(ShortNameMode::kPermissive);
  if (mode != ShortNameMode::kDisabled) {
    auto it = conf.aliases.find(shortname);
    if (it != conf.aliases.end()) {
      KILN_ASSIGN_OR_RETURN(ImageReference a, ImageReference::Parse(it->second.first + suffix()));
      out.candidates.push_back(std::move(a));
      out.note = "Resolved \"" + shortname + "\" as an alias (" + it->second.second + ")";
      return out;
    }
  }
  std::vector<std::string> search = conf.search.value_or(std::vector<std::string>{"docker.io"});
  if (search.empty())
    return Error(Errc::kInvalidInput, "short-name \"" + shortname + "\" did not resolve to an alias and " +
                                          "unqualified-search-registries is empty in " + conf.search_file +
                                          ": give a fully qualified name (registry/" + shortname + ")");
  for (const auto& s : search) {
    KILN_ASSIGN_OR_RETURN(ImageReference c,
                          ImageReference::ParseWithDefaultDomain(s + "/" + shortname + suffix(), "localhost"));
    out.candidates.push_back(std::move(c));
  }
  if (out.candidates.size() > 1 && mode == ShortNameMode::kEnforcing) {
    std::string names;
    for (const auto& c : out.candidates)
      names += (names.empty() ? "" : ", ") + c.str();
    return Error(Errc::kInvalidInput,
                 "short-name \"" + shortname + "\" is ambiguous with short-name-mode = \"enforcing\" (" +
                     conf.search_file + "): it could be " + names +
                     "; give the fully qualified name or add an alias (kiln does not prompt)");
  }
  return out;
}

}  // namespace kiln::registry
