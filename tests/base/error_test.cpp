#include "kiln/error.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

Expected<int> Half(int x) {
  if (x % 2)
    return Error(Errc::kInvalidInput, "odd: " + std::to_string(x));
  return x / 2;
}

Expected<int> Quarter(int x) {
  KILN_ASSIGN_OR_RETURN(int h, Half(x));
  auto q = Half(h);
  if (!q)
    return std::move(q).error().WithContext("quarter");
  return *q;
}

TEST(ErrorTest, PropagatesWithContext) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "quarter: odd: 3");
  EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(ExitCodeFor(r.error().code()), 2);
}

TEST(ErrorTest, FromErrnoNamesTheObject) {
  Error e = Error::FromErrno("open /nope", ENOENT);
  EXPECT_EQ(e.code(), Errc::kNotFound);
  EXPECT_EQ(e.message(), "open /nope: No such file or directory");
  EXPECT_EQ(ExitCodeFor(Errc::kSandbox), 125);
  EXPECT_EQ(ExitCodeFor(Errc::kFailed), 1);
}

}  // namespace
}  // namespace kiln
