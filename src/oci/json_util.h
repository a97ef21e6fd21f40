// Internal helpers around nlohmann::json for the oci module: a strict parse
// (duplicate keys and deep nesting rejected, size capped, exceptions turned
// into kCorrupt errors) and typed field readers whose errors name the field.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kiln/error.h"

namespace kiln::oci_internal {

using Json = nlohmann::json;

/// Parses `text` as one JSON value. kCorrupt ("<what>: ...") on syntax
/// errors, duplicate object keys, nesting deeper than 64, or more than
/// max_bytes of input.
Expected<Json> ParseStrict(std::string_view text, std::string_view what, size_t max_bytes);

/// Compact dump with sorted keys; invalid UTF-8 is replaced, never thrown.
std::string Dump(const Json& j);

}  // namespace kiln::oci_internal
