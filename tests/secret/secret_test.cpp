// The secrets store (include/kiln/secret.h) on a temporary directory: names,
// IDs, prefixes, replace, limits, permissions, and what a crash leaves.
#include "kiln/secret.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "kiln/fs.h"
#include "support/scratch.h"

namespace kiln::secret {
namespace {

class SecretTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = kiln::testing::MakeScratchDir("kiln-secret-test.");
    ASSERT_FALSE(root_.empty());
  }
  void TearDown() override { (void)RemoveAll(root_); }
  std::string root_;
};

TEST_F(SecretTest, CreateListInspectReadRemove) {
  auto a = Create(root_, "dbpass", "s3cr3t", {.labels = {{"app", "web"}}});
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->id.size(), 25u);
  EXPECT_EQ(a->name, "dbpass");
  EXPECT_EQ(a->labels.at("app"), "web");
  ASSERT_TRUE(Create(root_, "api-key.v1", "k", {}));
  auto list = List(root_);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "api-key.v1");  // by name
  EXPECT_EQ((*list)[1].name, "dbpass");
  auto by_id = Inspect(root_, a->id);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->name, "dbpass");
  auto by_prefix = Inspect(root_, a->id.substr(0, 6));
  ASSERT_TRUE(by_prefix);
  EXPECT_EQ(by_prefix->id, a->id);
  auto value = ReadValue(root_, "dbpass");
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, "s3cr3t");
  auto removed = Remove(root_, "dbpass");
  ASSERT_TRUE(removed);
  EXPECT_EQ(*removed, a->id);
  auto gone = Inspect(root_, "dbpass");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), Errc::kNotFound);
  EXPECT_EQ(gone.error().message(), "no such secret: dbpass");
  EXPECT_EQ(ReadValue(root_, "dbpass").error().code(), Errc::kNotFound);
  EXPECT_EQ(Remove(root_, "dbpass").error().code(), Errc::kNotFound);
}

TEST_F(SecretTest, ValueIsPrivateToTheOwner) {
  auto a = Create(root_, "p", "x", {});
  ASSERT_TRUE(a);
  struct stat st;
  ASSERT_EQ(::stat((a->path + "/data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(a->path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((root_ + "/secrets").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(SecretTest, NameInUseUnlessReplace) {
  auto a = Create(root_, "p", "one", {});
  ASSERT_TRUE(a);
  auto again = Create(root_, "p", "two", {});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::kInvalidInput);
  EXPECT_NE(again.error().message().find("secret name p is in use"), std::string::npos);
  EXPECT_EQ(*ReadValue(root_, "p"), "one");
  auto replaced = Create(root_, "p", "two", {.replace = true});
  ASSERT_TRUE(replaced);
  EXPECT_EQ(replaced->id, a->id);  // same secret, new value
  EXPECT_EQ(replaced->created, a->created);
  EXPECT_EQ(*ReadValue(root_, "p"), "two");
  EXPECT_EQ(List(root_)->size(), 1u);
}

TEST_F(SecretTest, BadNamesAndValuesRefused) {
  for (const char* bad : {"", "-x", ".x", "a/b", "a b", "ä"}) {
    auto r = Create(root_, bad, "v", {});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), Errc::kInvalidInput) << bad;
  }
  EXPECT_EQ(Create(root_, std::string(254, 'a'), "v", {}).error().code(), Errc::kInvalidInput);
  EXPECT_TRUE(Create(root_, std::string(253, 'a'), "v", {}));
  EXPECT_EQ(Create(root_, "empty", "", {}).error().code(), Errc::kInvalidInput);
  auto big = Create(root_, "big", std::string(kMaxSecretBytes + 1, 'x'), {});
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("the most is 512000"), std::string::npos);
  EXPECT_TRUE(Create(root_, "max", std::string(kMaxSecretBytes, 'x'), {}));
}

TEST_F(SecretTest, AmbiguousPrefixIsNamed) {
  // Two IDs share at least their empty prefix; with 16 secrets, two share
  // the first hex digit.
  for (int i = 0; i < 17; ++i)
    ASSERT_TRUE(Create(root_, "s" + std::to_string(i), "v", {}));
  auto list = *List(root_);
  std::string shared;
  for (size_t i = 0; i < list.size() && shared.empty(); ++i)
    for (size_t j = i + 1; j < list.size(); ++j)
      if (list[i].id[0] == list[j].id[0]) {
        shared = list[i].id.substr(0, 1);
        break;
      }
  ASSERT_FALSE(shared.empty());
  auto r = Inspect(root_, shared);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
  EXPECT_NE(r.error().message().find("ambiguous"), std::string::npos);
}

TEST_F(SecretTest, HalfWrittenRecordIsIgnoredAndCleared) {
  // A crash between mkdir and rename leaves .new-<id>: no secret appears,
  // and the next create removes it.
  ASSERT_TRUE(MakeDirs(root_ + "/secrets/.new-0123456789abcdef012345678", 0700));
  ASSERT_TRUE(WriteFileAtomic(root_ + "/secrets/.new-0123456789abcdef012345678/data", "half", 0600));
  EXPECT_TRUE(List(root_)->empty());
  ASSERT_TRUE(Create(root_, "next", "v", {}));
  EXPECT_FALSE(PathExists(root_ + "/secrets/.new-0123456789abcdef012345678"));
  EXPECT_EQ(List(root_)->size(), 1u);
}

TEST_F(SecretTest, EmptyStoreListsNothing) {
  auto list = List(root_);
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->empty());
}

}  // namespace
}  // namespace kiln::secret
