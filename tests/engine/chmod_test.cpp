// COPY --chmod parsing (engine/copy.h).
#include <gtest/gtest.h>

#include "engine/copy.h"

namespace kiln::engine {
namespace {

TEST(ApplyChmodTest, OctalAndSymbolic) {
  EXPECT_EQ(*ApplyChmod("755", 0100600, false), 0100755u);
  EXPECT_EQ(*ApplyChmod("0700", 0100644, false), 0100700u);
  EXPECT_EQ(*ApplyChmod("4755", 0100644, false), 0104755u);
  EXPECT_EQ(*ApplyChmod("u+x", 0100644, false), 0100744u);
  EXPECT_EQ(*ApplyChmod("go-r", 0100644, false), 0100600u);
  EXPECT_EQ(*ApplyChmod("a=r", 0100777, false), 0100444u);
  EXPECT_EQ(*ApplyChmod("a+X", 0040600, true), 0040711u);
  EXPECT_EQ(*ApplyChmod("a+X", 0100600, false), 0100600u);
  EXPECT_FALSE(ApplyChmod("8", 0100644, false));
  EXPECT_FALSE(ApplyChmod("u?x", 0100644, false));
  EXPECT_FALSE(ApplyChmod("77777", 0100644, false));
}

}  // namespace
}  // namespace kiln::engine
