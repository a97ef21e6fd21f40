// Loading a compose project: which files, the .env file, the project name,
// per-file interpolation, then the merge of the files in order
// (compose-spec 13-merge.md), then the translation (translate.cpp).
#include <algorithm>
#include <set>

#include "compose/internal.h"
#include "kiln/keyvalue.h"

namespace kiln::compose {

std::string CleanPath(const std::string& path) {
  bool abs = !path.empty() && path[0] == '/';
  std::vector<std::string> parts;
  for (const auto& p : SplitList(path, '/')) {
    if (p == ".")
      continue;
    if (p == "..") {
      if (!parts.empty() && parts.back() != "..")
        parts.pop_back();
      else if (!abs)
        parts.push_back("..");
      continue;
    }
    parts.push_back(p);
  }
  std::string out = abs ? "/" : "";
  for (size_t i = 0; i < parts.size(); ++i)
    out += (i ? "/" : "") + parts[i];
  return out.empty() ? "." : out;
}

std::string JoinPath(const std::string& dir, const std::string& path) {
  if (!path.empty() && path[0] == '/')
    return CleanPath(path);
  return CleanPath(dir + "/" + path);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  std::string p = CleanPath(path);
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

const std::vector<std::string>& DefaultFileNames() {
  static const std::vector<std::string> k = {"compose.yaml", "compose.yml", "docker-compose.yaml",
                                             "docker-compose.yml"};
  return k;
}

namespace {

// --- interpolation over the tree ----------------------------------------------

using Lookup = std::function<std::optional<std::string>(const std::string&)>;

std::string Child(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

Status InterpolateTree(YamlNode* n, const std::string& path, const Lookup& lookup, std::vector<std::string>* warnings) {
  switch (n->kind) {
    case YamlNode::Kind::kNull:
      return {};
    case YamlNode::Kind::kScalar: {
      std::vector<std::string> unset;
      auto v = Interpolate(n->scalar, lookup, &unset);
      if (!v)
        return NodeError(*n, path, v.error().message());
      for (const auto& name : unset)
        warnings->push_back(n->mark.str() + ": " + path + ": the \"" + name +
                            "\" variable is not set, defaulting to a blank string");
      n->scalar = *v;
      return {};
    }
    case YamlNode::Kind::kSequence:
      for (size_t i = 0; i < n->items.size(); ++i)
        if (auto st = InterpolateTree(&n->items[i], path + "[" + std::to_string(i) + "]", lookup, warnings); !st)
          return st;
      return {};
    case YamlNode::Kind::kMapping:
      for (auto& v : n->items) {
        // Extension fields (x-*) are templates for anchors: their own values are interpolated where used.
        if (v.key.rfind("x-", 0) == 0)
          continue;
        if (auto st = InterpolateTree(&v, Child(path, v.key), lookup, warnings); !st)
          return st;
      }
      return {};
  }
  return {};
}

// --- merge (compose-spec 13-merge.md) -------------------------------------------

void MergeGeneric(YamlNode* base, const YamlNode& over);

// environment, labels, build.args...: a list of "K=V" (or "K") as a
// mapping; depends_on, networks (no `sep`): a list of names as a mapping of
// name -> defaults.
YamlNode AsMapping(const YamlNode& n, std::optional<char> sep) {
  if (!n.IsSequence())
    return n;
  YamlNode m = YamlNode::Map();
  m.mark = n.mark;
  m.key = n.key;
  m.key_mark = n.key_mark;
  for (const auto& item : n.items) {
    if (!item.IsScalar())
      return n;  // not the list form: left for the translator to report
    size_t eq = sep ? item.scalar.find(*sep) : std::string::npos;
    YamlNode v = eq == std::string::npos ? YamlNode::Null() : YamlNode::Str(item.scalar.substr(eq + 1));
    v.mark = item.mark;
    v.key_mark = item.mark;
    m.Set(eq == std::string::npos ? item.scalar : item.scalar.substr(0, eq), std::move(v));
  }
  return m;
}

// The target of a volumes/secrets entry, to merge by it.
std::string MountTarget(const YamlNode& item, bool secret) {
  if (item.IsMapping()) {
    if (const YamlNode* t = item.Find("target"); t && t->IsScalar())
      return t->scalar;
    if (const YamlNode* s = item.Find("source"); secret && s && s->IsScalar())
      return s->scalar;
    return "";
  }
  if (!item.IsScalar())
    return "";
  if (secret)
    return item.scalar;
  auto parts = SplitList(item.scalar, ':');
  return parts.size() >= 2 ? parts[1] : item.scalar;
}

void AppendUnique(YamlNode* base, const YamlNode& over) {
  for (const auto& item : over.items) {
    bool dup = item.IsScalar() && std::any_of(base->items.begin(), base->items.end(), [&](const YamlNode& b) {
                 return b.IsScalar() && b.scalar == item.scalar;
               });
    if (!dup)
      base->items.push_back(item);
  }
}

void MergeByTarget(YamlNode* base, const YamlNode& over, bool secret) {
  for (const auto& item : over.items) {
    std::string t = MountTarget(item, secret);
    auto it = std::find_if(base->items.begin(), base->items.end(),
                           [&](const YamlNode& b) { return !t.empty() && MountTarget(b, secret) == t; });
    if (it != base->items.end())
      *it = item;
    else
      base->items.push_back(item);
  }
}

void MergeService(YamlNode* base, const YamlNode& over) {
  static const std::set<std::string> kReplace = {"command", "entrypoint"};
  static const std::set<std::string> kAppendUnique = {"ports", "expose", "dns", "dns_search", "env_file", "tmpfs",
                                                      "cap_add", "cap_drop", "profiles", "extra_hosts"};
  static const std::set<std::string> kAsMap = {"environment", "labels", "annotations"};
  static const std::set<std::string> kNames = {"depends_on", "networks"};
  for (const auto& v : over.items) {
    YamlNode* b = base->Find(v.key);
    if (!b || kReplace.count(v.key) || v.IsNull() || b->IsNull()) {
      base->Set(v.key, v);
      continue;
    }
    if (kAsMap.count(v.key) || kNames.count(v.key)) {
      std::optional<char> sep;
      if (kAsMap.count(v.key))
        sep = '=';
      YamlNode bm = AsMapping(*b, sep);
      YamlNode om = AsMapping(v, sep);
      if (bm.IsMapping() && om.IsMapping()) {
        MergeGeneric(&bm, om);
        base->Set(v.key, std::move(bm));
      } else {
        base->Set(v.key, v);
      }
      continue;
    }
    if (kAppendUnique.count(v.key) && b->IsSequence() && v.IsSequence()) {
      AppendUnique(b, v);
      continue;
    }
    if ((v.key == "volumes" || v.key == "secrets") && b->IsSequence() && v.IsSequence()) {
      MergeByTarget(b, v, v.key == "secrets");
      continue;
    }
    if (v.key == "build") {
      YamlNode bb = b->IsScalar() ? YamlNode::Map() : *b;
      if (b->IsScalar())
        bb.Set("context", *b);
      YamlNode ob = v.IsScalar() ? YamlNode::Map() : v;
      if (v.IsScalar())
        ob.Set("context", v);
      if (YamlNode* ba = bb.Find("args"); ba && ob.Find("args")) {
        YamlNode bm = AsMapping(*ba, '=');
        YamlNode om = AsMapping(*ob.Find("args"), '=');
        if (bm.IsMapping() && om.IsMapping()) {
          MergeGeneric(&bm, om);
          *ba = bm;
          ob.Set("args", bm);
        }
      }
      MergeGeneric(&bb, ob);
      bb.mark = b->mark;
      base->Set(v.key, std::move(bb));
      continue;
    }
    MergeGeneric(b, v);
  }
}

// Mappings merge key by key, everything else is replaced.
void MergeGeneric(YamlNode* base, const YamlNode& over) {
  if (!base->IsMapping() || !over.IsMapping()) {
    std::string key = base->key;
    Mark key_mark = base->key_mark;
    *base = over;
    base->key = key;
    base->key_mark = key_mark;
    return;
  }
  for (const auto& v : over.items) {
    if (YamlNode* b = base->Find(v.key))
      MergeGeneric(b, v);
    else
      base->items.push_back(v);
  }
}

}  // namespace

void MergeProject(YamlNode* base, const YamlNode& over) {
  if (!base->IsMapping() || !over.IsMapping()) {
    if (over.IsMapping())
      *base = over;
    return;
  }
  for (const auto& v : over.items) {
    YamlNode* b = base->Find(v.key);
    if (!b) {
      base->items.push_back(v);
      continue;
    }
    if (v.key == "services" && b->IsMapping() && v.IsMapping()) {
      for (const auto& s : v.items) {
        YamlNode* bs = b->Find(s.key);
        if (bs && bs->IsMapping() && s.IsMapping())
          MergeService(bs, s);
        else if (bs)
          *bs = s;
        else
          b->items.push_back(s);
      }
      continue;
    }
    MergeGeneric(b, v);
  }
}

Expected<LoadResult> Load(const LoadOptions& options) {
  LoadResult result;
  auto env_get = [&](const std::string& k) -> std::optional<std::string> {
    auto it = options.environ.find(k);
    if (it == options.environ.end())
      return std::nullopt;
    return it->second;
  };

  // Which files.
  std::vector<std::string> files;
  for (const auto& f : options.files)
    files.push_back(f == "-" ? f : JoinPath(options.working_dir, f));
  if (files.empty()) {
    if (auto cf = env_get("COMPOSE_FILE"); cf && !cf->empty()) {
      std::string sep = env_get("COMPOSE_PATH_SEPARATOR").value_or(":");
      for (const auto& f : SplitList(*cf, sep.empty() ? ':' : sep[0]))
        files.push_back(JoinPath(options.working_dir, f));
    }
  }
  std::map<std::string, std::string> texts;
  if (files.empty()) {
    for (const auto& name : DefaultFileNames()) {
      std::string p = JoinPath(options.working_dir, name);
      if (auto t = options.read_file(p)) {
        files.push_back(p);
        texts[p] = *t;
        break;
      }
    }
    if (files.empty())
      return Error(Errc::kInvalidInput, "no compose file found in " + options.working_dir +
                                            " (looked for compose.yaml, compose.yml, docker-compose.yaml, "
                                            "docker-compose.yml); name one with -f");
    // compose.yaml -> compose.override.yaml, docker-compose.yml -> docker-compose.override.yml...
    std::string base = BaseName(files[0]);
    std::string stem = base.substr(0, base.rfind('.'));
    for (const char* ext : {".yaml", ".yml"}) {
      std::string p = JoinPath(options.working_dir, stem + ".override" + ext);
      if (auto t = options.read_file(p)) {
        files.push_back(p);
        texts[p] = *t;
        break;
      }
    }
  }
  std::string project_dir = files[0] == "-" ? options.working_dir : DirName(files[0]);

  // The interpolation environment: the process environment over the .env file (or --env-file files).
  std::map<std::string, std::string> dotenv;
  std::vector<std::string> env_files;
  bool explicit_env = !options.env_files.empty();
  // The process environment over what the .env files set so far.
  Lookup lookup = [&](const std::string& k) -> std::optional<std::string> {
    if (auto v = env_get(k))
      return v;
    auto it = dotenv.find(k);
    if (it != dotenv.end())
      return it->second;
    return std::nullopt;
  };

  for (const auto& f : options.env_files)
    env_files.push_back(JoinPath(options.working_dir, f));
  if (!explicit_env)
    env_files.push_back(JoinPath(project_dir, ".env"));
  for (const auto& f : env_files) {
    auto text = options.read_file(f);
    if (!text) {
      if (explicit_env)
        return Error(Errc::kInvalidInput, "--env-file " + f + ": no such file");
      continue;
    }
    auto vars = ParseDotEnv(*text, f, lookup);  // what the files before it set
    if (!vars)
      return std::move(vars).error();
    for (auto& [k, v] : *vars)
      dotenv[k] = v;
  }

  // Parse and interpolate each file, then merge in order.
  YamlNode merged;
  for (const auto& f : files) {
    std::optional<std::string> text;
    if (auto it = texts.find(f); it != texts.end())
      text = it->second;
    else
      text = options.read_file(f);
    if (!text)
      return Error(Errc::kInvalidInput, f + ": no such file");
    auto doc = ParseYaml(*text, f);
    if (!doc)
      return std::move(doc).error();
    if (!doc->IsMapping()) {
      if (doc->IsNull())
        return Error(Errc::kInvalidInput, f + ": empty compose file");
      return NodeError(*doc, "(top level)", "a compose file is a mapping, not a " + KindName(*doc));
    }
    if (auto st = InterpolateTree(&*doc, "", lookup, &result.warnings); !st)
      return std::move(st).error();
    if (merged.IsNull())
      merged = std::move(*doc);
    else
      MergeProject(&merged, *doc);
  }

  // The project name: -p, COMPOSE_PROJECT_NAME, name:, the directory.
  std::string name;
  std::string name_from;
  if (!options.project_name.empty()) {
    name = options.project_name;
    name_from = "-p";
  } else if (auto v = lookup("COMPOSE_PROJECT_NAME"); v && !v->empty()) {
    name = *v;
    name_from = "COMPOSE_PROJECT_NAME";
  } else if (const YamlNode* n = merged.Find("name"); n && n->IsScalar() && !n->scalar.empty()) {
    name = n->scalar;
    name_from = n->mark.str() + ": name";
  }
  if (!name.empty()) {
    if (!IsValidProjectName(name))
      return Error(Errc::kInvalidInput, name_from + ": invalid project name \"" + name +
                                            "\": must contain only lower case letters, digits, '-' and '_', "
                                            "and start with a letter or digit");
  } else {
    name = NormalizeProjectName(BaseName(project_dir));
    if (name.empty())
      return Error(Errc::kInvalidInput, "no project name: the directory name \"" + BaseName(project_dir) +
                                            "\" has no usable character; give one with -p or name:");
  }

  TranslateContext ctx;
  ctx.project_name = name;
  ctx.project_dir = project_dir;
  ctx.profiles = options.profiles;
  if (auto p = lookup("COMPOSE_PROFILES"); p && options.profiles.empty())
    ctx.profiles = SplitList(*p, ',');
  ctx.lookup = lookup;
  ctx.read_file = options.read_file;
  ctx.home = env_get("HOME").value_or("");
  ctx.warnings = &result.warnings;
  auto project = Translate(merged, ctx);
  if (!project)
    return std::move(project).error();
  project->config_files = files;
  result.project = std::move(*project);
  return result;
}

}  // namespace kiln::compose
