#include "kiln/io.h"

#include <vector>

#include "kiln/fs.h"

namespace kiln {

Status ReadChunks(int fd, size_t chunk_size, const std::function<Status(std::string_view data)>& on_data,
                  const std::string& what) {
  std::vector<char> buf(chunk_size);
  for (;;) {
    ssize_t n = ReadRetry(fd, buf.data(), buf.size());
    if (n < 0)
      return Error::FromErrno(what.empty() ? "read" : "read " + what);
    if (n == 0)
      return Ok();
    KILN_TRY(on_data(std::string_view(buf.data(), static_cast<size_t>(n))));
  }
}

}  // namespace kiln
