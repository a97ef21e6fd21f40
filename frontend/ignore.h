// .containerignore / .dockerignore: reading and matching with
// moby/patternmatcher semantics (last match wins, `!` re-includes, a path
// matches if it or any parent matches, `**`), compiled to re2.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"

namespace kiln::frontend {

/// Reads ignore-file text into cleaned patterns (comments and blanks
/// dropped, paths cleaned, leading '/' stripped, '!' kept).
std::vector<std::string> ReadIgnoreFile(std::string_view text);

/// Compiled patterns. Expensive to build; share it, don't copy it.
class IgnoreMatcher {
 public:
  /// kInvalidInput for a malformed pattern (names the pattern).
  static Expected<std::shared_ptr<const IgnoreMatcher>> Create(const std::vector<std::string>& patterns);
  ~IgnoreMatcher();
  IgnoreMatcher(const IgnoreMatcher&) = delete;
  IgnoreMatcher& operator=(const IgnoreMatcher&) = delete;

  /// True if the context-relative, '/'-separated path is excluded.
  bool Matches(std::string_view path) const;
  /// True if some exception ('!') pattern could re-include something below
  /// `dir`, so an excluded directory must still be walked.
  bool HasExceptionsUnder(std::string_view dir) const;
  bool empty() const;

 private:
  IgnoreMatcher();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::frontend
