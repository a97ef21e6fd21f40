// Random IDs and names: the one maker of them (containers, secrets,
// anonymous volumes).
#pragma once

#include <cstddef>
#include <string>

#include "kiln/error.h"

namespace kiln {

/// `hex_chars` lower-case hex characters from the kernel's random source
/// (getrandom). kIo when the kernel gives none.
Expected<std::string> RandomHex(size_t hex_chars);

}  // namespace kiln
