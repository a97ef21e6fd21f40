#include "expand.h"

#include <gtest/gtest.h>

namespace kiln::frontend {
namespace {

TEST(EnvironmentTest, LaterSetWinsAndOrderIsKept) {
  Environment env;
  env.Set("A", "1");
  env.Set("B", "");
  env.Set("A", "2");
  EXPECT_EQ(env.ToList(), (std::vector<std::string>{"A=2", "B="}));
  EXPECT_EQ(*env.Get("B"), "");
  EXPECT_FALSE(env.Get("C"));
  env.Unset("A");
  EXPECT_EQ(env.ToList(), (std::vector<std::string>{"B="}));
}

}  // namespace
}  // namespace kiln::frontend
