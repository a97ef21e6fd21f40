#include "kiln/random.h"

#include <sys/random.h>

#include <cerrno>

#include "kiln/digest.h"

namespace kiln {

Expected<std::string> RandomHex(size_t hex_chars) {
  std::string raw((hex_chars + 1) / 2, '\0');
  size_t got = 0;
  while (got < raw.size()) {
    ssize_t n = ::getrandom(raw.data() + got, raw.size() - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return Error::FromErrno("getrandom");
    got += static_cast<size_t>(n);
  }
  std::string hex = HexEncode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  hex.resize(hex_chars);
  return hex;
}

}  // namespace kiln
