// The pieces of distribution/reference's grammar (regexp.go) as whole-string
// matchers (reference.cpp); here for reference_test's comparison with the
// regular expressions they replace.
#pragma once

#include <string_view>

namespace kiln::reference_grammar {

bool Domain(std::string_view s);         // a host name or [IPv6], without the port
bool Port(std::string_view s);           // [0-9]+
bool PathComponent(std::string_view s);  // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
bool Tag(std::string_view s);            // [\w][\w.-]{0,127}
bool IdPrefix(std::string_view s);       // (?:sha256:)?[a-f0-9]{3,64}

}  // namespace kiln::reference_grammar
