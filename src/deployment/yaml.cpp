#include "deployment/yaml.h"

#include <cctype>
#include <cstddef>
#include <cstring>
#include <set>

#include <yaml-cpp/yaml.h>

namespace kiln::deployment {

std::string Mark::str() const {
  if (line <= 0)
    return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

const YamlNode* YamlNode::Find(std::string_view name) const {
  if (kind != Kind::kMapping)
    return nullptr;
  for (const auto& v : items)
    if (v.key == name)
      return &v;
  return nullptr;
}

YamlNode* YamlNode::Find(std::string_view name) {
  return const_cast<YamlNode*>(static_cast<const YamlNode*>(this)->Find(name));
}

YamlNode& YamlNode::Set(const std::string& name, YamlNode value) {
  value.key = name;
  if (YamlNode* old = Find(name)) {
    *old = std::move(value);
    return *old;
  }
  items.push_back(std::move(value));
  return items.back();
}

YamlNode YamlNode::Str(std::string s) {
  YamlNode n;
  n.kind = Kind::kScalar;
  n.scalar = std::move(s);
  n.quoted = true;
  return n;
}

YamlNode YamlNode::Plain(std::string s) {
  YamlNode n;
  n.kind = Kind::kScalar;
  n.scalar = std::move(s);
  return n;
}

YamlNode YamlNode::Map() {
  YamlNode n;
  n.kind = Kind::kMapping;
  return n;
}

YamlNode YamlNode::Seq() {
  YamlNode n;
  n.kind = Kind::kSequence;
  return n;
}

YamlNode YamlNode::Null() { return YamlNode(); }

namespace {

// Aliases can make a small file expand into a huge tree ("billion laughs"):
// the conversion stops at this many nodes or this depth.
constexpr size_t kMaxNodes = 1'000'000;
constexpr int kMaxDepth = 200;

struct Converter {
  std::string file;
  size_t nodes = 0;

  Mark MarkOf(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    if (m.line < 0)
      return Mark{file, 0, 0};
    return Mark{file, m.line + 1, m.column + 1};
  }

  Status Convert(const YAML::Node& in, YamlNode* out, int depth) {
    if (++nodes > kMaxNodes)
      return Error(Errc::kInvalidInput, file + ": document too large (more than 1000000 nodes after aliases)");
    if (depth > kMaxDepth)
      return Error(Errc::kInvalidInput, MarkOf(in).str() + ": document nested too deeply (aliases in a cycle?)");
    out->mark = MarkOf(in);
    switch (in.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out->kind = YamlNode::Kind::kNull;
        return {};
      case YAML::NodeType::Scalar:
        out->kind = YamlNode::Kind::kScalar;
        out->scalar = in.Scalar();
        // "!" is the tag of a quoted or block scalar; an explicit !!str too.
        out->quoted = in.Tag() == "!" || in.Tag() == "tag:yaml.org,2002:str";
        return {};
      case YAML::NodeType::Sequence:
        out->kind = YamlNode::Kind::kSequence;
        for (const auto& item : in) {
          YamlNode child;
          if (auto st = Convert(item, &child, depth + 1); !st)
            return st;
          out->items.push_back(std::move(child));
        }
        return {};
      case YAML::NodeType::Map:
        return ConvertMap(in, out, depth);
    }
    return {};
  }

  Status ConvertMap(const YAML::Node& in, YamlNode* out, int depth) {
    out->kind = YamlNode::Kind::kMapping;
    std::vector<YamlNode> merged;  // from `<<`, added after the explicit keys
    std::set<std::string> seen;
    for (const auto& kv : in) {
      const YAML::Node& k = kv.first;
      const YAML::Node& value = kv.second;
      if (!k.IsScalar() && !k.IsNull())
        return Error(Errc::kInvalidInput, MarkOf(k).str() + ": a mapping key must be a string");
      std::string key = k.IsNull() ? "" : k.Scalar();
      if (key == "<<" && k.Tag() != "!") {
        std::vector<YAML::Node> sources;
        if (value.IsMap()) {
          sources.push_back(value);
        } else if (value.IsSequence()) {
          for (const auto& s : value)
            sources.push_back(s);
        }
        for (const auto& s : sources) {
          if (!s.IsMap())
            return Error(Errc::kInvalidInput, MarkOf(s).str() + ": << (merge key) needs a mapping or a list of mappings");
          YamlNode m;
          if (auto st = Convert(s, &m, depth + 1); !st)
            return st;
          for (auto& v : m.items)
            merged.push_back(std::move(v));
        }
        if (sources.empty())
          return Error(Errc::kInvalidInput, MarkOf(value).str() + ": << (merge key) needs a mapping or a list of mappings");
        continue;
      }
      if (!seen.insert(key).second)
        return Error(Errc::kInvalidInput, MarkOf(k).str() + ": mapping key \"" + key + "\" already defined");
      YamlNode child;
      if (auto st = Convert(value, &child, depth + 1); !st)
        return st;
      child.key = key;
      child.key_mark = MarkOf(k);
      if (child.mark.line == 0)
        child.mark = child.key_mark;
      out->items.push_back(std::move(child));
    }
    // Earlier merge sources win over later ones; explicit keys over all.
    for (auto& v : merged) {
      if (!seen.insert(v.key).second)
        continue;
      out->items.push_back(std::move(v));
    }
    return {};
  }
};

std::string ParserMessage(const YAML::Exception& e, const std::string& file) {
  std::string msg = e.msg;
  if (e.mark.is_null())
    return file + ": invalid YAML: " + msg;
  return Mark{file, e.mark.line + 1, e.mark.column + 1}.str() + ": invalid YAML: " + msg;
}

}  // namespace

Expected<YamlNode> ParseYaml(std::string_view text, const std::string& file) {
  auto docs = ParseYamlDocuments(text, file);
  if (!docs)
    return std::move(docs).error();
  if (docs->empty()) {
    YamlNode n;
    n.mark = Mark{file, 0, 0};
    return n;
  }
  if (docs->size() > 1)
    return Error(Errc::kInvalidInput, (*docs)[1].mark.str() + ": more than one YAML document");
  return std::move((*docs)[0]);
}

Expected<std::vector<YamlNode>> ParseYamlDocuments(std::string_view text, const std::string& file) {
  std::vector<YAML::Node> raw;
  try {
    raw = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error(Errc::kInvalidInput, ParserMessage(e, file));
  }
  std::vector<YamlNode> out;
  Converter conv{file};
  try {
    for (const auto& d : raw) {
      if (d.IsNull())
        continue;
      YamlNode n;
      if (auto st = conv.Convert(d, &n, 0); !st)
        return std::move(st).error();
      out.push_back(std::move(n));
    }
  } catch (const YAML::Exception& e) {
    return Error(Errc::kInvalidInput, ParserMessage(e, file));
  }
  return out;
}

// --- scalars -----------------------------------------------------------------

namespace {

bool AllOf(std::string_view s, const char* set) {
  if (s.empty())
    return false;
  for (char c : s)
    if (!std::strchr(set, c))
      return false;
  return true;
}

}  // namespace

bool IsYamlNull(const std::string& s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

bool IsYamlBool(const std::string& s) {
  return s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE";
}

bool IsYamlInt(const std::string& s) {
  std::string_view v = s;
  if (v.size() > 2 && v[0] == '0' && v[1] == 'o')
    return AllOf(v.substr(2), "01234567");
  if (v.size() > 2 && v[0] == '0' && v[1] == 'x')
    return AllOf(v.substr(2), "0123456789abcdefABCDEF");
  if (!v.empty() && (v[0] == '-' || v[0] == '+'))
    v.remove_prefix(1);
  return AllOf(v, "0123456789");
}

bool IsYamlFloat(const std::string& s) {
  std::string_view v = s;
  if (!v.empty() && (v[0] == '-' || v[0] == '+'))
    v.remove_prefix(1);
  if (v == ".inf" || v == ".Inf" || v == ".INF")
    return true;
  if (s == ".nan" || s == ".NaN" || s == ".NAN")
    return true;
  size_t i = 0, digits = 0;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])))
    ++i, ++digits;
  if (i < v.size() && v[i] == '.') {
    ++i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])))
      ++i, ++digits;
  }
  if (digits == 0)
    return false;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '-' || v[i] == '+'))
      ++i;
    size_t exp = 0;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])))
      ++i, ++exp;
    if (exp == 0)
      return false;
  }
  return i == v.size();
}

std::string KindName(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::kNull:
      return "null";
    case YamlNode::Kind::kSequence:
      return "sequence";
    case YamlNode::Kind::kMapping:
      return "mapping";
    case YamlNode::Kind::kScalar:
      break;
  }
  if (node.quoted)
    return "string";
  if (IsYamlBool(node.scalar))
    return "boolean";
  if (IsYamlInt(node.scalar) || IsYamlFloat(node.scalar))
    return "number";
  if (IsYamlNull(node.scalar))
    return "null";
  return "string";
}

// --- emitter -----------------------------------------------------------------

namespace {

bool IsOldBool(const std::string& s) {
  static const std::set<std::string> k = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                          "on", "On", "ON", "off", "Off", "OFF"};
  return k.count(s) > 0;
}

bool NeedsQuotes(const std::string& s) {
  if (s.empty() || IsYamlNull(s) || IsYamlBool(s) || IsYamlInt(s) || IsYamlFloat(s) || IsOldBool(s))
    return true;
  if (s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t')
    return true;
  if (std::strchr("-?:,[]{}#&*!|>'\"%@`", s.front())) {
    // "-x", ":x" and "?x" are plain scalars in YAML 1.2, but "- ", ": ", "? " and a lone indicator are not.
    bool soft = (s.front() == '-' || s.front() == '?' || s.front() == ':') && s.size() > 1 && s[1] != ' ';
    if (!soft)
      return true;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f)
      return true;
    if (c == ':' && (i + 1 == s.size() || s[i + 1] == ' '))
      return true;
    if (c == '#' && i > 0 && s[i - 1] == ' ')
      return true;
  }
  return false;
}

std::string DoubleQuoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static const char* hex = "0123456789abcdef";
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string ScalarText(const YamlNode& n) {
  if (n.kind == YamlNode::Kind::kNull)
    return "null";
  if (!n.quoted)
    return n.scalar.empty() ? "\"\"" : n.scalar;
  return NeedsQuotes(n.scalar) ? DoubleQuoted(n.scalar) : n.scalar;
}

std::string KeyText(const std::string& k) { return NeedsQuotes(k) ? DoubleQuoted(k) : k; }

std::string Inline(const YamlNode& n) {
  if (n.IsMapping())
    return "{}";
  if (n.IsSequence())
    return "[]";
  return ScalarText(n);
}

void Emit(const YamlNode& n, int indent, bool seq_indent, std::string* out);

void EmitMapping(const YamlNode& n, int indent, bool first_inline, bool seq_indent, std::string* out) {
  bool first = true;
  for (const auto& v : n.items) {
    if (!(first && first_inline))
      out->append(indent, ' ');
    first = false;
    *out += KeyText(v.key) + ":";
    if (v.IsMapping() && !v.items.empty()) {
      *out += "\n";
      EmitMapping(v, indent + 2, false, seq_indent, out);
    } else if (v.IsSequence() && !v.items.empty()) {
      *out += "\n";
      Emit(v, seq_indent ? indent + 2 : indent, seq_indent, out);
    } else {
      *out += " " + Inline(v) + "\n";
    }
  }
}

void Emit(const YamlNode& n, int indent, bool seq_indent, std::string* out) {
  if (n.IsMapping() && !n.items.empty()) {
    EmitMapping(n, indent, false, seq_indent, out);
    return;
  }
  if (n.IsSequence() && !n.items.empty()) {
    for (const auto& item : n.items) {
      out->append(indent, ' ');
      *out += "- ";
      if (item.IsMapping() && !item.items.empty()) {
        EmitMapping(item, indent + 2, true, seq_indent, out);
      } else if (item.IsSequence() && !item.items.empty()) {
        // "- - x": the nested sequence starts on the same line.
        std::string nested;
        Emit(item, indent + 2, seq_indent, &nested);
        *out += nested.substr(static_cast<size_t>(indent + 2));
      } else {
        *out += Inline(item) + "\n";
      }
    }
    return;
  }
  out->append(indent, ' ');
  *out += Inline(n) + "\n";
}

}  // namespace

std::string EmitYaml(const YamlNode& node, bool indent_sequences) {
  std::string out;
  Emit(node, 0, indent_sequences, &out);
  return out;
}

nlohmann::json ToJson(const YamlNode& n) {
  switch (n.kind) {
    case YamlNode::Kind::kNull:
      return nullptr;
    case YamlNode::Kind::kMapping: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& v : n.items)
        j[v.key] = ToJson(v);
      return j;
    }
    case YamlNode::Kind::kSequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& v : n.items)
        j.push_back(ToJson(v));
      return j;
    }
    case YamlNode::Kind::kScalar:
      break;
  }
  if (n.quoted)
    return n.scalar;
  if (IsYamlNull(n.scalar))
    return nullptr;
  if (IsYamlBool(n.scalar))
    return n.scalar[0] == 't' || n.scalar[0] == 'T';
  if (IsYamlInt(n.scalar) && n.scalar.find_first_of("ox") == std::string::npos) {
    try {
      return std::stoll(n.scalar);
    } catch (...) {
      return n.scalar;
    }
  }
  if (IsYamlFloat(n.scalar) && n.scalar.find_first_of("in") == std::string::npos) {
    try {
      return std::stod(n.scalar);
    } catch (...) {
      return n.scalar;
    }
  }
  return n.scalar;
}

YamlNode StringSeqNode(const std::vector<std::string>& v) {
  YamlNode n = YamlNode::Seq();
  for (const auto& s : v)
    n.items.push_back(YamlNode::Str(s));
  return n;
}

YamlNode StringMapNode(const std::map<std::string, std::string>& m) {
  YamlNode n = YamlNode::Map();
  for (const auto& [k, v] : m)
    n.Set(k, YamlNode::Str(v));
  return n;
}

Error NodeError(const YamlNode& node, const std::string& path, const std::string& why) {
  std::string where = node.mark.str();
  return Error(Errc::kInvalidInput, (where.empty() ? std::string() : where + ": ") + path + ": " + why);
}

std::string ItemPath(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

Expected<std::string> ReadString(const YamlNode& node, const std::string& path) {
  if (node.IsScalar())
    return node.scalar;
  return NodeError(node, path, "must be a string, not a " + KindName(node));
}

Expected<int64_t> ReadInt(const YamlNode& node, const std::string& path, int64_t min, int64_t max) {
  if (node.IsScalar() && IsYamlInt(node.scalar) && node.scalar.find_first_of("ox") == std::string::npos) {
    try {
      long long v = std::stoll(node.scalar);
      if (v >= min && v <= max)
        return static_cast<int64_t>(v);
    } catch (...) {
    }
    return NodeError(node, path,
                     node.scalar + " is out of range (" + std::to_string(min) + "-" + std::to_string(max) + ")");
  }
  return NodeError(node, path, "must be an integer, not " +
                                   (node.IsScalar() ? "\"" + node.scalar + "\"" : "a " + KindName(node)));
}

Expected<std::vector<std::string>> ReadStringList(const YamlNode& node, const std::string& path,
                                                  bool allow_string) {
  std::vector<std::string> out;
  if (node.IsScalar() && allow_string) {
    out.push_back(node.scalar);
    return out;
  }
  if (!node.IsSequence())
    return NodeError(node, path, std::string("must be a list of strings") + (allow_string ? " or a string" : "") +
                                     ", not a " + KindName(node));
  for (size_t i = 0; i < node.items.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(std::string v, ReadString(node.items[i], ItemPath(path, i)));
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace kiln::deployment
