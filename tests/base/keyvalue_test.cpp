#include "kiln/keyvalue.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(KeyValueTest, ItemsKeyAloneAndErrorsNameTheFlag) {
  auto kv = ParseKeyValue("a=b=c", "--label");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->first, "a");
  EXPECT_EQ(kv->second, "b=c");
  auto alone = ParseKeyValue("k", "--label");
  ASSERT_TRUE(alone);
  EXPECT_EQ(alone->first, "k");
  EXPECT_EQ(alone->second, "");
  auto required = ParseKeyValue("k", "--build-context", true);
  ASSERT_FALSE(required);
  EXPECT_EQ(required.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(required.error().message(), "invalid --build-context \"k\": missing value (want KEY=VALUE)");
  for (const char* bad : {"", "=v"}) {
    auto e = ParseKeyValue(bad, "--label");
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(e.error().message(), "invalid --label \"" + std::string(bad) + "\": empty key (want KEY=VALUE)");
  }
}

TEST(KeyValueTest, ItemsIntoAMapLaterWins) {
  std::map<std::string, std::string> m = {{"old", "1"}};
  ASSERT_TRUE(ParseKeyValues({"a=1", "b", "a=2"}, "label", &m));
  EXPECT_EQ(m, (std::map<std::string, std::string>{{"a", "2"}, {"b", ""}, {"old", "1"}}));
  auto st = ParseKeyValues({"c=3", "=x"}, "label", &m);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message(), "invalid label \"=x\": empty key (want KEY=VALUE)");
}

TEST(KeyValueTest, CommaListsNameTheBadPart) {
  auto m = ParseKeyValueList("id=a,,src=/x=y,", "--secret");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (std::map<std::string, std::string>{{"id", "a"}, {"src", "/x=y"}}));
  auto bad = ParseKeyValueList("id=a,src", "--secret");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(bad.error().message(), "invalid --secret \"id=a,src\": \"src\" is not KEY=VALUE");
  EXPECT_FALSE(ParseKeyValueList("=a", "--output"));
}

TEST(KeyValueTest, SettingLinesSkipBlanksAndCommentsAndCountLines) {
  std::vector<std::pair<std::string, int>> seen;
  auto st = ForEachSettingLine("a=1\r\n\n  # c\n\t b=2 \t\nlast", [&](std::string_view line, int n) {
    seen.emplace_back(std::string(line), n);
    return Ok();
  });
  ASSERT_TRUE(st);
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, int>>{{"a=1", 1}, {"b=2", 4}, {"last", 5}}));
  auto stop = ForEachSettingLine("x\ny\nz", [&](std::string_view line, int n) -> Status {
    if (line == "y")
      return Error(Errc::kInvalidInput, "line " + std::to_string(n));
    return Ok();
  });
  ASSERT_FALSE(stop);
  EXPECT_EQ(stop.error().message(), "line 2");
}

}  // namespace
}  // namespace kiln
