#include "kiln/error.h"

#include <cstring>

namespace kiln {

const char* ErrcName(Errc code) {
  switch (code) {
    case Errc::kInvalidInput: return "invalid-input";
    case Errc::kNotFound: return "not-found";
    case Errc::kIo: return "io";
    case Errc::kNetwork: return "network";
    case Errc::kAuth: return "auth";
    case Errc::kCorrupt: return "corrupt";
    case Errc::kSandbox: return "sandbox";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kCancelled: return "cancelled";
    case Errc::kFailed: return "failed";
  }
  return "unknown";
}

Error Error::FromErrno(std::string_view what, int err) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Error(err == ENOENT ? Errc::kNotFound : Errc::kIo, std::move(msg), err);
}

int ExitCodeFor(Errc code) {
  switch (code) {
    case Errc::kInvalidInput:
      return 2;
    case Errc::kSandbox:
      return 125;
    default:
      return 1;
  }
}

}  // namespace kiln
