// Internal to src/sandbox: small host helpers that both the kiln-sandbox
// helper (init.cpp, no base library) and the parent side (probe.cpp,
// spawn.cpp) use, defined once in shared.cpp.
#pragma once

#include <string>
#include <vector>

namespace kiln::sandbox {

/// The pieces of `text` between `sep`s, in order, empty ones included
/// ("a::b" -> "a", "", "b"; "" -> one empty piece).
std::vector<std::string> SplitOn(const std::string& text, char sep);

/// The entries of a $PATH-style list (SplitOn ':'): empty ones included (""
/// is the current directory to execvp; callers decide).
inline std::vector<std::string> SplitSearchPath(const std::string& path) { return SplitOn(path, ':'); }

/// The first executable `name` in /usr/local/bin, /usr/bin, /bin,
/// /usr/sbin, /sbin (never $PATH: the helper runs with the caller's
/// environment), or "". The probe and the helper find the same binary.
std::string FindHostBinary(const char* name);

}  // namespace kiln::sandbox
