// engine/build_job.h: the pieces of a build job that need no store --
// cutting a shared stage out of a compiled graph, and the runnability check.
#include "engine/build_job.h"

#include <cstdlib>

#include <gtest/gtest.h>

#include "kiln/containerfile.h"
#include "kiln/fs.h"

namespace kiln::engine {
namespace {

BuildGraph CompileText(const std::string& text, const std::string& target = "") {
  auto file = frontend::ParseContainerfile(text);
  EXPECT_TRUE(file) << file.error().message();
  frontend::CompileOptions o;
  o.target = target;
  o.target_platform = Platform::Host();
  o.build_platform = Platform::Host();
  auto g = frontend::Compile(*file, o);
  EXPECT_TRUE(g) << g.error().message();
  return *g;
}

TEST(StageSubgraphTest, IsWhatCompilingForThatTargetGives) {
  const std::string text =
      "FROM busybox AS tools\nRUN echo tools > /t\n"
      "FROM busybox AS unrelated\nRUN echo no > /n\n"
      "FROM scratch AS data\nCOPY --from=tools /t /t\n"
      "FROM busybox AS builder\nCOPY --from=data /t /d\nRUN --mount=type=bind,from=tools,target=/m cat /m/t\n"
      "FROM busybox\nCOPY --from=builder /d /d\nCOPY --from=unrelated /n /n\n";
  BuildGraph full = CompileText(text);
  StageIndex builder = -1;
  for (const Stage& s : full.stages)
    if (s.name == "builder")
      builder = s.index;
  ASSERT_GE(builder, 0);
  BuildGraph cut = StageSubgraph(full, builder);
  BuildGraph compiled = CompileText(text, "builder");
  ASSERT_EQ(cut.stages.size(), 3u) << "tools, data, builder; not unrelated nor the last stage";
  EXPECT_EQ(cut.target, 2);
  cut.global_args = compiled.global_args;
  cut.warnings = compiled.warnings;
  EXPECT_EQ(DumpGraph(cut), DumpGraph(compiled));
}

TEST(CheckRunnableTest, RefusesAPlatformWithRunStepsThatCannotRun) {
  auto dir = TempDir::Create("kiln-binfmt-");
  ASSERT_TRUE(dir);
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir->path(), "status"), "enabled\n"));
  ::setenv("KILN_BINFMT_MISC_DIR", dir->path().c_str(), 1);
  std::string other = Platform::Host().architecture == "s390x" ? "ppc64le" : "s390x";
  BuildGraph with_run = CompileText("FROM --platform=linux/" + other + " busybox\nRUN true\n");
  auto s = CheckRunnable({with_run});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kInvalidInput);
  EXPECT_NE(s.error().message().find(other), std::string::npos) << s.error().message();
  // No RUN step: nothing has to execute, so the platform is fine.
  EXPECT_TRUE(CheckRunnable({CompileText("FROM --platform=linux/" + other + " busybox\nENV A=1\n")}));
  EXPECT_TRUE(CheckRunnable({CompileText("FROM busybox\nRUN true\n")}));
  ::unsetenv("KILN_BINFMT_MISC_DIR");
}

}  // namespace
}  // namespace kiln::engine
