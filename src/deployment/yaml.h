// A YAML document as the translators read it: every node keeps the
// file:line:column it came from, mappings keep their order, scalars remember
// whether they were quoted (a quoted "8080" is a string, a plain 8080 may be a
// number). Parsed with yaml-cpp (which keeps the marks); anchors and aliases
// are resolved, merge keys (`<<: *x`) applied. The emitter writes block YAML
// the way Go's yaml.v3 does (what docker compose config and kubectl print).
// Shared with compose and kube as "deployment/yaml.h" (docs/layering.txt).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/error.h"

namespace kiln::deployment {

struct Mark {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  /// "file:line:column" ("file" alone when the line is unknown).
  std::string str() const;
};

struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMapping };
  Kind kind = Kind::kNull;
  std::string scalar;
  bool quoted = false;          // a quoted or block scalar: always a string
  std::vector<YamlNode> items;  // sequence items, or mapping values (each with its key)
  std::string key;              // when this node is a mapping value: its key
  Mark mark;                    // where the node starts
  Mark key_mark;                // where its key starts

  bool IsNull() const { return kind == Kind::kNull; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsSequence() const { return kind == Kind::kSequence; }
  bool IsMapping() const { return kind == Kind::kMapping; }
  /// The value of `key` in a mapping, or nullptr.
  const YamlNode* Find(std::string_view name) const;
  YamlNode* Find(std::string_view name);
  /// Appends `value` under `name` to a mapping (replacing an existing one).
  YamlNode& Set(const std::string& name, YamlNode value);

  static YamlNode Str(std::string s);   // a quoted (string) scalar
  static YamlNode Plain(std::string s); // a plain scalar: a number, bool or string
  static YamlNode Map();
  static YamlNode Seq();
  static YamlNode Null();
};

/// Parses one document (an empty text gives a null node). Errors name
/// file:line:column. A mapping key repeated in one mapping is an error.
Expected<YamlNode> ParseYaml(std::string_view text, const std::string& file);
/// Parses every document of a `---` separated stream (null documents dropped).
Expected<std::vector<YamlNode>> ParseYamlDocuments(std::string_view text, const std::string& file);

/// Block YAML as Go's yaml.v3 writes it (2-space indent, "- " items indented
/// under their key, strings quoted only when a plain scalar would read as
/// something else). With indent_sequences false, "- " items sit at their
/// key's indentation (kubectl and podman kube generate).
std::string EmitYaml(const YamlNode& node, bool indent_sequences = true);
/// The same tree as JSON: plain scalars that read as int/float/bool/null
/// become numbers/booleans/null, everything else strings.
nlohmann::json ToJson(const YamlNode& node);

/// YAML 1.2 core schema: does this plain scalar read as null, a bool, an int or a float?
bool IsYamlNull(const std::string& s);
bool IsYamlBool(const std::string& s);
bool IsYamlInt(const std::string& s);
bool IsYamlFloat(const std::string& s);

/// "string", "number", "boolean", "null", "mapping", "sequence": for messages.
std::string KindName(const YamlNode& node);

/// Builders shared by the printers (compose config, kube generate): a
/// sequence of strings and a mapping of strings, each value quoted as needed.
YamlNode StringSeqNode(const std::vector<std::string>& v);
YamlNode StringMapNode(const std::map<std::string, std::string>& m);

// Value readers shared by the compose and kube translators: every error is
// kInvalidInput "FILE:LINE:COL: PATH: WHY" (the mark left out when unknown).
Error NodeError(const YamlNode& node, const std::string& path, const std::string& why);
/// "PATH[I]", the path of a sequence item in messages.
std::string ItemPath(const std::string& path, size_t i);
/// A scalar's text ("must be a string, not a KIND" otherwise).
Expected<std::string> ReadString(const YamlNode& node, const std::string& path);
/// A decimal integer in [min, max] (no 0o/0x forms).
Expected<int64_t> ReadInt(const YamlNode& node, const std::string& path, int64_t min, int64_t max);
/// A sequence of strings; with allow_string a lone string too.
Expected<std::vector<std::string>> ReadStringList(const YamlNode& node, const std::string& path,
                                                  bool allow_string = false);

}  // namespace kiln::deployment
