// Internal to the frontend: small text helpers shared by the lexer-side
// files (ignore.cpp, instructions.cpp) and the compiler.
#pragma once

#include <string>
#include <string_view>

namespace kiln::frontend::text {

/// ASCII upper case (std::toupper per byte).
std::string Upper(std::string_view s);
/// Non-empty and only '0'..'9'.
bool IsDigits(std::string_view s);
/// Go's path.Clean: lexical, '/' separated.
std::string CleanPath(std::string_view p);

}  // namespace kiln::frontend::text
