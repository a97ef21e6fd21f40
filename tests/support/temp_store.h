// A gtest fixture for the unit tests of the store and the modules above it:
// a fresh directory, stores opened in it, and rootfs tars made with tar(1).
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/store.h"

namespace kiln::testing {

/// tar(1) of the directory `root` into `tar`, reproducibly (sorted names,
/// mtime 0, owner and group 0).
inline void MakeRootfsTar(const std::string& root, const std::string& tar) {
  std::string cmd =
      "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C " + root + " -cf " + tar + " .";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

class TempStoreTest : public ::testing::Test {
 protected:
  /// A new directory /tmp/<prefix>XXXXXX (removed after the test); call
  /// from SetUp as ASSERT_NO_FATAL_FAILURE(MakeTempDir(...)).
  void MakeTempDir(const std::string& prefix) {
    auto d = TempDir::Create(prefix);
    ASSERT_TRUE(d) << d.error().message();
    dir_ = std::make_unique<TempDir>(std::move(*d));
  }

  /// MakeTempDir, then store_ = the store at Path("store").
  void MakeTempStore(const std::string& prefix) {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir(prefix));
    store_ = OpenStore("store");
    ASSERT_TRUE(store_);
  }

  /// `rel` inside the test's directory.
  std::string Path(const std::string& rel) const { return JoinPath(dir_->path(), rel); }

  /// The store at Path(name), made if missing.
  std::unique_ptr<Store> OpenStore(const std::string& name) {
    auto s = Store::Open(Path(name));
    EXPECT_TRUE(s) << s.error().message();
    return s ? std::make_unique<Store>(std::move(*s)) : nullptr;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace kiln::testing
