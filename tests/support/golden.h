// Golden files: a test's output compared with a file under testdata/;
// KILN_UPDATE_GOLDEN=1 (re)writes the files instead.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "kiln/fs.h"

namespace kiln::test {

inline bool UpdateGolden() {
  const char* v = std::getenv("KILN_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

/// EXPECT that `got` equals the content of `path`; with KILN_UPDATE_GOLDEN=1,
/// writes `got` there instead.
inline void ExpectGolden(const std::string& path, const std::string& got) {
  if (UpdateGolden()) {
    ASSERT_TRUE(WriteFileAtomic(path, got)) << path;
    return;
  }
  auto want = ReadFile(path);
  ASSERT_TRUE(want) << path << " missing (KILN_UPDATE_GOLDEN=1 writes it)";
  EXPECT_EQ(got, *want) << path;
}

}  // namespace kiln::test
