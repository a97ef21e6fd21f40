// podman's list output: headers from field names, the `table` prefix,
// tabwriter alignment, --format json.
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kiln/format.h"

namespace kiln::format {
namespace {

using nlohmann::json;

TEST(Headers, CamelCaseWords) {
  const std::pair<std::string, std::string> cases[] = {
      {"ID", "ID"},
      {"Names", "NAMES"},
      {"CreatedAt", "CREATED AT"},
      {"ImageID", "IMAGE ID"},
      {"AutoRemove", "AUTO REMOVE"},
      {"IDFoo", "ID FOO"},
      {"Ipv4Addr", "IPV 4 ADDR"},
      {"x", "X"},
  };
  for (const auto& [field, header] : cases)
    EXPECT_EQ(HeaderFor(field), header) << field;
}

TEST(AlignTabs, GoTabwriter) {
  const std::pair<std::string, std::string> cases[] = {
      // cells padded to the widest + 2, at least 12; the last text left alone
      {"A\tB\nlonger-than-twelve\tC\n", "A                   B\nlonger-than-twelve  C\n"},
      {"a\tb\tc\n", "a           b           c\n"},
      {"no tabs\n", "no tabs\n"},
      // a line without the column ends the block
      {"xx\ty\nz\nlong-cell-abcdef\tq\n", "xx          y\nz\nlong-cell-abcdef  q\n"},
      {"é\tx\n", "é           x\n"},  // widths count runes
  };
  for (const auto& [text, want] : cases)
    EXPECT_EQ(AlignTabs(text), want) << text;
}

std::vector<json> Rows() {
  return {json{{"ID", "abc"}, {"Names", {"web"}}, {"Status", "Up 2 seconds"}, {"Labels", {{"a", "b"}}}},
          json{{"ID", "def"}, {"Names", {"a-much-longer-name"}}, {"Status", "Created"}, {"Labels", json::object()}}};
}

ListOptions PsOptions() {
  ListOptions o;
  o.default_format = "table {{.ID}}\t{{.Names}}\t{{.Status}}";
  o.headers = {{"ID", "CONTAINER ID"}};
  o.template_options.name = "ps";
  return o;
}

// Rows() rendered with `format` as ps renders them ("" and a failure on error).
std::string RenderPs(const std::string& format) {
  auto out = RenderList(format, Rows(), PsOptions());
  EXPECT_TRUE(out) << (out ? "" : out.error().message());
  return out ? *out : "";
}

TEST(RenderList, DefaultTable) {
  std::string out = RenderPs("");
  EXPECT_EQ(out,
            "CONTAINER ID  NAMES                 STATUS\n"
            "abc           [web]                 Up 2 seconds\n"
            "def           [a-much-longer-name]  Created\n");
  EXPECT_EQ(RenderPs("table"), out);
}

TEST(RenderList, UserTableSpacesBecomeColumns) {
  EXPECT_EQ(RenderPs("table {{.ID}} {{.Status}}"),
            "CONTAINER ID  STATUS\n"
            "abc           Up 2 seconds\n"
            "def           Created\n");
  // the \t escape a shell user types
  EXPECT_EQ(RenderPs("table {{.ID}}\\t{{printf \"%s %s\" .ID .Status}}"),
            "CONTAINER ID  CONTAINER ID STATUS\n"
            "abc           abc Up 2 seconds\n"
            "def           def Created\n");
}

TEST(RenderList, NoHeading) {
  ListOptions o = PsOptions();
  o.no_heading = true;
  auto out = RenderList("table {{.ID}}\t{{.Status}}", Rows(), o);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "abc         Up 2 seconds\ndef         Created\n");
}

TEST(RenderList, PlainTemplatePerRow) {
  auto out = RenderList("{{.ID}}:{{join .Names \",\"}}", Rows(), PsOptions());
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "abc:web\ndef:a-much-longer-name\n");
  auto tabs = RenderList("{{.ID}}\\t{{.Status}}\\n", Rows(), PsOptions());
  ASSERT_TRUE(tabs);
  EXPECT_EQ(*tabs, "abc\tUp 2 seconds\ndef\tCreated\n");  // not aligned, as podman
  auto empty = RenderList("{{.ID}}", {}, PsOptions());
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");
}

TEST(RenderList, Errors) {
  auto bad = RenderList("{{.Nope}}", Rows(), PsOptions());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "template: ps:1:2: executing \"ps\" at <.Nope>: can't evaluate field Nope in type struct");
  auto syntax = RenderList("table {{.ID", Rows(), PsOptions());
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().code(), Errc::kInvalidInput);
}

TEST(RenderOne, JsonAndTemplate) {
  json v = {{"State", {{"Status", "exited"}}}, {"Name", "c1"}};
  EXPECT_TRUE(IsJsonFormat("json"));
  EXPECT_TRUE(IsJsonFormat(" JSON "));
  EXPECT_FALSE(IsJsonFormat("{{json .}}"));
  auto j = RenderOne("json", v, {}, 2);
  ASSERT_TRUE(j);
  EXPECT_EQ(*j, v.dump(2) + "\n");
  auto t = RenderOne("{{.State.Status}}\\t{{.Name}}", v, {});
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, "exited\tc1\n");
  auto n = RenderOne("{{.Name}}\n", v, {});
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, "c1\n");
}

}  // namespace
}  // namespace kiln::format
