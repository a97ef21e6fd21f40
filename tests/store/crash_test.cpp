// Crash safety (docs/security.md H49): a writer process is killed with SIGKILL at
// every crash point of a workload that exercises each write protocol of the
// store (blobs, index.json, cache records, unpacked layers); after each
// kill, Store::Check() must be clean and the workload must then complete.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/store.h"

namespace kiln {
namespace {

/// The workload: every kind of write the store does. Returns 0 on success.
int Workload(const std::string& root) {
  auto s = Store::Open(root);
  if (!s)
    return 10;
  Store& store = *s;
  std::string big(300000, 'x');
  for (size_t i = 0; i < big.size(); i += 97)
    big[i] = static_cast<char>('a' + i % 26);
  auto layer = store.PutBlob(kMediaTypeOciLayer, big);
  if (!layer)
    return 11;
  ImageConfig c;
  c.set_platform(Platform::Host());
  c.diff_ids = {layer->digest};
  auto m = store.WriteImage(c, {*layer});
  if (!m)
    return 12;
  std::vector<std::string> n1 = {"localhost/crash:1", "localhost/crash:2"};
  if (!store.AddImage(*m, n1))
    return 13;
  if (!store.PutCacheRecord("rec", R"({"layer":")" + layer->digest.str() + "\"}"))
    return 14;
  auto dir = store.GetOrCreateLayerDir(layer->digest, [](const std::string& d) -> Status {
    KILN_TRY(MakeDirs(JoinPath(d, "etc")));
    return WriteFileAtomic(JoinPath(d, "etc/hostname"), "crash\n");
  });
  if (!dir)
    return 15;
  // A second image that takes over a name; then an untag.
  c.config.cmd = std::vector<std::string>{"echo", "2"};
  auto m2 = store.WriteImage(c, {*layer});
  if (!m2)
    return 16;
  std::vector<std::string> n2 = {"localhost/crash:2"};
  if (!store.AddImage(*m2, n2))
    return 17;
  if (!store.RemoveName("localhost/crash:1"))
    return 18;
  return 0;
}

/// Runs the workload in a child with KILN_CRASH_AT=n (0: none) and returns
/// the wait status.
int RunChild(const std::string& root, int n, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (n > 0)
      ::setenv("KILN_CRASH_AT", std::to_string(n).c_str(), 1);
    else
      ::unsetenv("KILN_CRASH_AT");
    if (!log.empty())
      ::setenv("KILN_CRASH_LOG", log.c_str(), 1);
    else
      ::unsetenv("KILN_CRASH_LOG");
    ResetCrashPointsForTesting();
    ::_exit(Workload(root));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(CrashTest, KillAtEveryCrashPointLeavesACleanStore) {
  auto tmp = TempDir::Create("kiln-crash-");
  ASSERT_TRUE(tmp);
  // Count the crash points of one full run.
  std::string log = JoinPath(tmp->path(), "points.log");
  int st = RunChild(JoinPath(tmp->path(), "count"), 0, log);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "workload failed: " << st;
  auto text = ReadFile(log);
  ASSERT_TRUE(text);
  int points = 0;
  for (char ch : *text)
    points += ch == '\n';
  std::cout << "crash points in the workload: " << points << "\n";
  ASSERT_GE(points, 20);

  for (int n = 1; n <= points; ++n) {
    std::string root = JoinPath(tmp->path(), "s" + std::to_string(n));
    st = RunChild(root, n, "");
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "point " << n << " did not crash";
    auto store = Store::Open(root);
    ASSERT_TRUE(store) << "point " << n << ": " << store.error().message();
    auto report = store->Check();
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_TRUE(report->ok()) << "after a crash at point " << n << ": " << report->problems.front();
    // Names point at complete images (old or new state, never a mix).
    auto images = store->ListImages();
    ASSERT_TRUE(images) << "point " << n << ": " << images.error().message();
    for (const auto& e : *images)
      EXPECT_TRUE(store->LoadImage(e.descriptor)) << "point " << n;
    // Recovery: the workload completes after the crash, and prune removes
    // the leftovers.
    st = RunChild(root, 0, "");
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "point " << n << ": rerun failed " << st;
    auto pruned = store->Prune({}, 5);
    ASSERT_TRUE(pruned) << pruned.error().message();
    auto after = store->Check();
    ASSERT_TRUE(after);
    EXPECT_TRUE(after->ok() && after->notes.empty()) << "point " << n;
    ASSERT_TRUE(RemoveAll(root));
  }
}

}  // namespace
}  // namespace kiln
