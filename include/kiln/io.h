// Reading a file descriptor to its end in chunks (hashing, copying into a
// blob writer), EINTR retried, one error convention.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "kiln/error.h"

namespace kiln {

/// Reads `fd` to its end, `chunk_size` bytes at a time, handing each piece
/// to `on_data` (its first error stops the reading and is returned). A read
/// error is kIo "read <what>" ("read" when `what` is empty).
Status ReadChunks(int fd, size_t chunk_size, const std::function<Status(std::string_view data)>& on_data,
                  const std::string& what = "");

}  // namespace kiln
