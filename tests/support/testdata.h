// Helpers for tests: where testdata and ../shared live, temp dirs.
#pragma once

#include <cstdlib>
#include <string>

#include "kiln/fs.h"

namespace kiln::test {

/// testdata/ of the source tree (meson sets KILN_TESTDATA).
inline std::string TestdataDir() {
  const char* d = std::getenv("KILN_TESTDATA");
  return d ? d : "testdata";
}

/// ../shared beside the checkout, or "" when absent (tests then skip with a
/// message).
inline std::string SharedDir() {
  const char* d = std::getenv("KILN_SHARED");
  std::string dir = d ? d : "../shared";
  return PathExists(dir) ? dir : std::string();
}

}  // namespace kiln::test
