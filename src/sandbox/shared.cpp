// Helpers shared by the kiln-sandbox helper (init.cpp) and the parent side
// of the sandbox (probe.cpp, spawn.cpp), and the bounding-set drop to
// Docker's default capabilities (kiln/sandbox.h) that `kiln exec`
// (src/run/exec.cpp) uses too: one keep-list for both.
#include "sandbox/shared.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>

#include "kiln/sandbox.h"

namespace kiln {

int DropToDefaultCapabilities() {
  for (int cap = 0; cap <= 63; ++cap) {
    bool kept = false;
    for (int k : kDefaultCapabilities)
      kept = kept || k == cap;
    if (kept)
      continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return cap;
  }
  return -1;
}

namespace sandbox {

std::vector<std::string> SplitOn(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  for (size_t j; (j = text.find(sep, i)) != std::string::npos; i = j + 1)
    out.push_back(text.substr(i, j - i));
  out.push_back(text.substr(i));
  return out;
}

std::string FindHostBinary(const char* name) {
  for (const char* dir : {"/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"}) {
    std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0)
      return p;
  }
  return {};
}

}  // namespace sandbox
}  // namespace kiln
