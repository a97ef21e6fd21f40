// Shell-word expansion with BuildKit's semantics (frontend/dockerfile/shell):
// $V ${V} ${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?m} ${V?m} ${V#p} ${V##p}
// ${V%p} ${V%%p} ${V/p/r} ${V//p/r}, quotes and the escape token.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"

namespace kiln::frontend {

/// Looks a variable up; nullopt when unset (set-but-empty is "").
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

/// An ordered environment ("K=V" semantics, later Set wins).
class Environment {
 public:
  void Set(std::string_view key, std::string_view value);
  std::optional<std::string> Get(std::string_view key) const;
  bool Has(std::string_view key) const { return Get(key).has_value(); }
  void Unset(std::string_view key);
  /// In insertion order, "K=V".
  std::vector<std::string> ToList() const;
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }
  EnvLookup Lookup() const;

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

/// The largest result of expanding one word (BuildKit has no bound; a chain
/// of `ARG A2=${A1}${A1}` doubles per line and ran kiln out of memory).
inline constexpr size_t kMaxExpandedWord = size_t(1) << 20;
/// The budget the compiler gives one Containerfile: all expansion results
/// and the environments copied into its steps, together.
inline constexpr size_t kMaxExpansionTotal = size_t(64) << 20;

struct ExpandOptions {
  char escape = '\\';
  bool raw_quotes = false;    // keep quote characters
  bool skip_quotes = false;   // quotes are plain characters ($ expands inside them)
  bool raw_escapes = false;   // keep escape tokens
  bool skip_unset = false;    // leave $UNSET as written
  size_t max_word = kMaxExpandedWord;  // a result (or any part of it) over this is an error
  /// When set: the bytes still allowed for all results together; each
  /// result is subtracted, and a result that does not fit is an error.
  size_t* budget = nullptr;
};

/// Expands one word: quotes removed, escapes processed, no splitting.
/// Errors (bad substitution, ${V:?msg}, unterminated quote, a result over
/// opts.max_word or over the budget) are kInvalidInput.
Expected<std::string> ExpandWord(std::string_view word, const EnvLookup& env,
                                 const ExpandOptions& opts = {});

/// The full outcome of expanding a word.
struct ExpandResult {
  std::string word;                 // as ExpandWord returns it
  std::vector<std::string> words;   // as ExpandWords returns them
  std::vector<std::string> matched;    // referenced names that were set (sorted, unique)
  std::vector<std::string> unmatched;  // referenced names that were unset (sorted, unique)
};

/// Expands `word` once and reports both forms plus which variable names it
/// referenced (BuildKit's ProcessWordWithMatches): for warnings about unset
/// variables and to know which build args a step depends on. Names are
/// recorded only for expansions that were actually evaluated (the default
/// word of ${A:-$B} is evaluated even when A is set).
Expected<ExpandResult> ExpandWordWithMatches(std::string_view word, const EnvLookup& env,
                                             const ExpandOptions& opts = {});

/// Expands and splits into words (unquoted expansion results are split on
/// whitespace; empty words dropped).
Expected<std::vector<std::string>> ExpandWords(std::string_view text, const EnvLookup& env,
                                               const ExpandOptions& opts = {});

}  // namespace kiln::frontend
