// Build output (src/engine/progress.h, progress_tty.h): the plain lines and
// json events a sequence of engine events gives, and the live view's frames
// rendered from its model at given times. The real binary's output on a
// pseudo-terminal and in plain/json mode is tested by tests/integration/
// build_output.py.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/progress.h"
#include "engine/progress_tty.h"

namespace kiln::engine {
namespace {

const std::string kKey1 = "sha256:3f2a1b9c0d1e2f30415263748596a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e";
const std::string kKey2 = "sha256:4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";
const std::string kId = "sha256:5d8416cc9bc7faa909c81f206bf03dddbdfea106366caa8460e35e2e1653168b";

/// What a Progress wrote to its fd.
class Capture {
 public:
  Capture() : fd_(::memfd_create("progress", MFD_CLOEXEC)) {}
  ~Capture() { ::close(fd_); }
  int fd() const { return fd_; }
  std::string Text() const {
    std::string out;
    char buf[4096];
    ssize_t n;
    off_t off = 0;
    while ((n = ::pread(fd_, buf, sizeof buf, off)) > 0) {
      out.append(buf, static_cast<size_t>(n));
      off += n;
    }
    return out;
  }

 private:
  int fd_;
};

StepLabel L(const std::string& stage, int step, int total, const std::string& text, int index = 1, int stages = 1) {
  return StepLabel{stage, step, total, text, index, stages};
}

// One stage: every step numbered from FROM (1) without gaps, cached steps
// as buildah prints them, COMMIT, the image's short ID and the names.
TEST(ProgressPlain, OneStageLinesAsBuildah) {
  Capture c;
  {
    Progress p(ProgressMode::kPlain, c.fd());
    p.Begin(5);
    p.Start(L("stage-0", 0, 4, "FROM busybox"));
    p.Start(L("stage-0", 1, 4, "RUN echo hi"));
    p.Output(L("stage-0", 1, 4, "RUN echo hi"), "hi");
    p.Done(L("stage-0", 1, 4, "RUN echo hi"), kKey1, 0.2);
    p.Config(L("stage-0", 2, 4, "ENV A=1"), kKey1);
    p.Cached(L("stage-0", 3, 4, "COPY a /a"), kKey2);
    p.Config(L("stage-0", 4, 5, "ARG X"), "");
    StepLabel last = L("stage-0", 5, 5, "CMD [\"sh\"]");
    last.last = true;
    p.Config(last, kKey2);
    p.StageDone(L("stage-0", 0, 4, "FROM busybox"));
    p.Commit(L("stage-0", 4, 4, ""), "app");
    p.Committed(kId, 0.1);
    p.Tagged("localhost/app:latest");
    p.Succeeded();
  }
  EXPECT_EQ(c.Text(),
            "STEP 1/5: FROM busybox\n"
            "STEP 2/5: RUN echo hi\n"
            "hi\n"
            "--> 3f2a1b9c0d1\n"
            "STEP 3/5: ENV A=1\n"
            "--> 3f2a1b9c0d1\n"
            "STEP 4/5: COPY a /a\n"
            "--> Using cache 4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b\n"
            "--> 4c5d6e7f809\n"
            "STEP 5/6: ARG X\n"
            "STEP 6/6: CMD [\"sh\"]\n"
            "COMMIT app\n"
            "--> 5d8416cc9bc\n"
            "Successfully tagged localhost/app:latest\n");
}

// Three stages: "[i/N]" before STEP and COMMIT; the output and "-->" lines
// of the two that run at once name their stage (to their end).
TEST(ProgressPlain, StagesAndParallelPrefix) {
  Capture c;
  {
    Progress p(ProgressMode::kPlain, c.fd());
    p.Start(L("a", 0, 1, "FROM busybox AS a", 1, 3));
    p.Start(L("a", 1, 1, "RUN x", 1, 3));
    p.Output(L("a", 1, 1, "RUN x"), "alone");
    p.Start(L("b", 0, 1, "FROM busybox AS b", 2, 3));
    p.Start(L("b", 1, 1, "RUN y", 2, 3));
    p.Output(L("a", 1, 1, "RUN x", 1, 3), "from a");
    p.Output(L("b", 1, 1, "RUN y", 2, 3), "from b");
    p.Done(L("a", 1, 1, "RUN x", 1, 3), kKey1, 1);
    p.StageDone(L("a", 0, 1, "", 1, 3));
    p.Output(L("b", 1, 1, "RUN y", 2, 3), "b alone now");
    p.Done(L("b", 1, 1, "RUN y", 2, 3), kKey2, 1);
    p.StageDone(L("b", 0, 1, "", 2, 3));
    p.Start(L("stage-2", 0, 1, "FROM busybox", 3, 3));
    StepLabel last = L("stage-2", 1, 1, "COPY --from=a /x /x", 3, 3);
    last.last = true;
    p.Cached(last, kKey1);
    p.Commit(L("stage-2", 1, 1, "", 3, 3), "");
    p.Committed(kId, 0);
  }
  EXPECT_EQ(c.Text(),
            "[1/3] STEP 1/2: FROM busybox AS a\n"
            "[1/3] STEP 2/2: RUN x\n"
            "alone\n"
            "[2/3] STEP 1/2: FROM busybox AS b\n"
            "[2/3] STEP 2/2: RUN y\n"
            "[a] from a\n"
            "[b] from b\n"
            "[a] --> 3f2a1b9c0d1\n"
            "[b] b alone now\n"
            "[b] --> 4c5d6e7f809\n"
            "[3/3] STEP 1/2: FROM busybox\n"
            "[3/3] STEP 2/2: COPY --from=a /x /x\n"
            "--> Using cache 3f2a1b9c0d1e2f30415263748596a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e\n"
            "[3/3] COMMIT\n"
            "--> 5d8416cc9bc\n");
}

TEST(ProgressPlain, ExplainLinesKeepTheirShape) {
  Capture c;
  {
    Progress p(ProgressMode::kQuiet, c.fd());
    p.Start(L("s", 0, 9, "FROM busybox"));
    p.Explain(L("stage-1", 5, 9, "RUN cat /a.txt"), false, {"an earlier step changed: step 4"});
    p.Done(L("stage-1", 5, 9, "RUN cat /a.txt"), kKey1, 1);
  }
  EXPECT_EQ(c.Text(),
            "[stage-1 5/9] cache miss: RUN cat /a.txt\n"
            "[stage-1 5/9]   because an earlier step changed: step 4\n");
}

// Every line is one JSON object with a status; steps carry the stage, the
// step (0 = FROM) and the seconds since the build started.
TEST(ProgressJson, EveryLineParses) {
  Capture c;
  {
    Progress p(ProgressMode::kJson, c.fd());
    p.Start(L("s", 0, 2, "FROM busybox"));
    p.Start(L("s", 1, 2, "RUN echo hi"));
    p.Output(L("s", 1, 2, "RUN echo hi"), "hi \xff");
    p.Done(L("s", 1, 2, "RUN echo hi"), kKey1, 0.25);
    p.Cached(L("s", 2, 2, "COPY a /a"), kKey2);
    p.Failed(L("s", 2, 2, "RUN false"), "exited with status 1");
    p.Config(L("s", 2, 2, "ENV A=1"), kKey2);
    p.Commit(L("s", 2, 2, ""), "app");
    p.Committed(kId, 0.5);
    p.Tagged("localhost/app:latest");
  }
  std::vector<std::string> statuses;
  std::string text = c.Text();
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    auto j = nlohmann::json::parse(text.substr(start, nl - start));
    statuses.push_back(j.at("status").get<std::string>());
    EXPECT_TRUE(j.at("elapsed").is_number()) << j.dump();
    if (j.contains("step")) {
      EXPECT_EQ(j.at("stage"), "s");
      EXPECT_TRUE(j.at("instruction").is_string());
    }
    if (j["status"] == "done") {
      EXPECT_EQ(j.at("step"), 1);
      EXPECT_EQ(j.at("duration"), 0.25);
      EXPECT_EQ(j.at("cache_key"), kKey1);
    }
    if (j["status"] == "committed") {
      EXPECT_EQ(j.at("id"), kId);
    }
  }
  EXPECT_EQ(start, text.size());
  EXPECT_EQ(statuses, (std::vector<std::string>{"start", "start", "output", "done", "cached", "error", "config",
                                                 "commit", "committed", "tagged"}));
}

TEST(ProgressMode, ParsesNamesAndBuildkitProgress) {
  ProgressMode m;
  int null_fd = ::memfd_create("notatty", MFD_CLOEXEC);
  ::unsetenv("BUILDKIT_PROGRESS");
  ASSERT_TRUE(ParseProgressMode("", null_fd, &m));
  EXPECT_EQ(m, ProgressMode::kPlain);  // auto, and not a terminal
  ASSERT_TRUE(ParseProgressMode("tty", null_fd, &m));
  EXPECT_EQ(m, ProgressMode::kTty);
  ASSERT_TRUE(ParseProgressMode("quiet", null_fd, &m));
  EXPECT_EQ(m, ProgressMode::kQuiet);
  EXPECT_FALSE(ParseProgressMode("fancy", null_fd, &m));
  ::setenv("BUILDKIT_PROGRESS", "json", 1);
  ASSERT_TRUE(ParseProgressMode("", null_fd, &m));
  EXPECT_EQ(m, ProgressMode::kJson);
  ASSERT_TRUE(ParseProgressMode("plain", null_fd, &m));  // the flag wins
  EXPECT_EQ(m, ProgressMode::kPlain);
  ::unsetenv("BUILDKIT_PROGRESS");
  ::close(null_fd);
}

// ------------------------------------------------------------ live view

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines)
    out += l + "\n";
  return out;
}

TEST(TtyModel, RunningStepShowsItsLastLinesAndCollapsesWhenDone) {
  TtyModel m;
  m.Begin(4);
  m.Start("base", "[base 1/2] FROM busybox", 0.0);
  m.End("base", "[base 2/2] RUN make", TtyModel::State::kCached, 0.1);
  m.Start("app", "[app 1/2] FROM busybox", 0.1);
  m.Start("app", "[app 2/2] RUN make all", 0.2);
  for (int i = 1; i <= 8; ++i)
    m.Output("app", "line " + std::to_string(i));
  EXPECT_EQ(Join(m.Render(1.45, 50, 40)),
            "[+] Building 1.4s (3/4)\n"
            " => [base 1/2] FROM busybox                   0.1s\n"
            " => CACHED [base 2/2] RUN make                0.0s\n"
            " => [app 1/2] FROM busybox                    0.1s\n"
            " => [app 2/2] RUN make all                    1.2s\n"
            " => => # line 3\n"
            " => => # line 4\n"
            " => => # line 5\n"
            " => => # line 6\n"
            " => => # line 7\n"
            " => => # line 8\n");
  m.End("app", "[app 2/2] RUN make all", TtyModel::State::kDone, 2.0);
  m.Start("commit ", "COMMIT app", 2.0, false);
  m.End("commit ", "COMMIT app", TtyModel::State::kDone, 2.1);
  m.Sub("naming to localhost/app:latest", 2.1);
  m.Finish(true, 2.2);
  EXPECT_EQ(Join(m.Render(9.0, 50, 40)),
            "[+] Building 2.2s (4/4) FINISHED\n"
            " => [base 1/2] FROM busybox                   0.1s\n"
            " => CACHED [base 2/2] RUN make                0.0s\n"
            " => [app 1/2] FROM busybox                    0.1s\n"
            " => [app 2/2] RUN make all                    1.8s\n"
            " => COMMIT app                                0.1s\n"
            " => => naming to localhost/app:latest\n");
  EXPECT_EQ(m.FailureReport(), "");
}

TEST(TtyModel, ParallelStagesRunAtOnce) {
  TtyModel m;
  m.Start("a", "[a 2/2] RUN sleep 2", 0.0);
  m.Start("b", "[b 2/2] RUN sleep 2", 0.5);
  m.Output("a", "from a");
  m.Output("b", "from b");
  EXPECT_EQ(Join(m.Render(1.0, 40, 40)),
            "[+] Building 1.0s (0/2)\n"
            " => [a 2/2] RUN sleep 2             1.0s\n"
            " => => # from a\n"
            " => [b 2/2] RUN sleep 2             0.5s\n"
            " => => # from b\n");
}

TEST(TtyModel, FailedStepKeepsItsWholeOutput) {
  TtyModel m;
  m.Start("s", "[s 2/2] RUN make", 0.0);
  for (int i = 1; i <= 10; ++i)
    m.Output("s", "out " + std::to_string(i));
  m.End("s", "[s 2/2] RUN make", TtyModel::State::kError, 0.5);
  m.Finish(false, 0.6);
  std::vector<std::string> frame = m.Render(1.0, 40, 40);
  ASSERT_EQ(frame.size(), 2u);
  EXPECT_EQ(frame[0], "[+] Building 0.6s (0/1) ERROR");
  EXPECT_EQ(frame[1], " => ERROR [s 2/2] RUN make          0.5s");
  std::string report = m.FailureReport();
  EXPECT_EQ(report.rfind("------\n > [s 2/2] RUN make:\nout 1\nout 2\n", 0), 0u) << report;
  EXPECT_NE(report.find("out 10\n------\n"), std::string::npos) << report;
}

TEST(TtyModel, TallBuildKeepsToTheTerminal) {
  TtyModel m;
  for (int i = 0; i < 30; ++i) {
    m.Start("s", "[s " + std::to_string(i + 1) + "/31] RUN step", i);
    m.End("s", "[s " + std::to_string(i + 1) + "/31] RUN step", TtyModel::State::kDone, i + 0.5);
  }
  m.Start("s", "[s 31/31] RUN last", 30);
  m.Output("s", "working");
  std::vector<std::string> frame = m.Render(31, 40, 10);
  ASSERT_EQ(frame.size(), 9u);  // one line left for the cursor
  EXPECT_EQ(frame[0], "[+] Building 31.0s (30/31)");
  EXPECT_EQ(frame[7], " => [s 31/31] RUN last              1.0s");
  EXPECT_EQ(frame[8], " => => # working");
  m.Finish(true, 32);
  EXPECT_EQ(m.Render(33, 40, 10).size(), 32u);  // the last frame is whole
}

TEST(TtyModel, LinesArePrintableAndFit) {
  EXPECT_EQ(TtyModel::Printable("10%\r50%\r100%"), "100%");
  EXPECT_EQ(TtyModel::Printable("\x1b[31mred\x1b[0m\tx\a"), "red    x");
  EXPECT_EQ(TtyModel::Printable("\x1b]0;title\x07text"), "text");
  EXPECT_EQ(TtyModel::Printable("crlf\r"), "crlf");
  EXPECT_EQ(TtyModel::Fit("h\xc3\xa9llo", 2), "h\xc3\xa9");
  EXPECT_EQ(TtyModel::Fit("abc", 5), "abc");
  TtyModel m;
  m.Start("s", "[s 1/1] RUN " + std::string(100, 'x'), 0);
  for (const std::string& l : m.Render(0.0, 30, 10))
    EXPECT_LE(l.size(), 30u) << l;
}

}  // namespace
}  // namespace kiln::engine
