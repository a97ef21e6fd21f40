// Go's strconv.Quote, for BuildKit-identical dumps and messages (dump.cpp).
#pragma once

#include <string>
#include <string_view>

namespace kiln::frontend {

/// Go strconv.Quote of a byte string.
std::string GoQuote(std::string_view s);

}  // namespace kiln::frontend
