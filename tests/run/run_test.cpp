// The run module's container lifecycle over a fake sandbox
// (tests/support/fake_sandbox.h): records, states, exit codes, names,
// stop/kill/rm and the failure paths. The real containers are tested by
// tests/run/run.sh and hostile.sh through the kiln binary.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "kiln/fs.h"
#include "kiln/run.h"
#include "kiln/store.h"
#include "support/fake_sandbox.h"
#include "support/scratch.h"

namespace kiln::run {
namespace {

using kiln::testing::DirNames;
using kiln::testing::FakeSandbox;
using kiln::testing::MakeScratchDir;

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeScratchDir("kiln-runtest-");
    ASSERT_FALSE(dir_.empty());
    paths_ = Paths{dir_ + "/store", dir_ + "/run"};
    auto store = Store::Open(paths_.store_root);
    ASSERT_TRUE(store) << store.error().message();
    store_.emplace(std::move(*store));
    // An image without layers: its Cmd, env, user and stop signal are all
    // the run module reads from it.
    ImageConfig config;
    config.set_platform(Platform::Host());
    config.config.cmd = std::vector<std::string>{"/bin/app", "--serve"};
    config.config.env = {"PATH=/app/bin", "FROM_IMAGE=1"};
    config.config.working_dir = "/work";
    auto desc = store_->WriteImage(config, {});
    ASSERT_TRUE(desc) << desc.error().message();
    std::vector<std::string> names = {"localhost/app:latest"};
    ASSERT_TRUE(store_->AddImage(*desc, names));
    config.config.cmd.reset();
    auto bare = store_->WriteImage(config, {});
    ASSERT_TRUE(bare);
    names = {"localhost/nocmd:latest"};
    ASSERT_TRUE(store_->AddImage(*bare, names));
  }
  void TearDown() override {
    store_.reset();
    (void)RemoveAll(dir_);
  }

  RunOptions Options(const std::string& image = "localhost/app:latest") {
    RunOptions o;
    o.image = image;
    o.network = NetworkMode::kNone;
    o.pull = "never";
    o.sandbox = &fake_;
    return o;
  }

  /// Runs in the foreground; returns the status and the id.
  Expected<int> RunIt(const RunOptions& o, std::string* id = nullptr) {
    std::string got;
    auto r = run::Run(*store_, paths_, o, &got);
    if (id)
      *id = got;
    return r;
  }

  ContainerInfo Info(const std::string& id) {
    auto info = InspectContainer(paths_, id);
    EXPECT_TRUE(info) << info.error().message();
    return info ? *info : ContainerInfo{};
  }

  /// Starts a long-running container (a host `sleep`) in a thread; returns
  /// once it runs.
  std::future<Expected<int>> StartSleeper(std::string* id, const std::string& name = "") {
    fake_.host_process = true;
    RunOptions o = Options();
    o.command = {"sleep", "60"};
    o.name = name;
    auto result = std::async(std::launch::async, [this, o] { return RunIt(o); });
    for (int i = 0; i < 500; ++i) {
      auto list = ListContainers(paths_, false);
      if (list && !list->empty() && (name.empty() || list->front().name == name)) {
        *id = list->front().id;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(id->empty()) << "the container never ran";
    return result;
  }

  /// Starts a sleeper, ends it with `end` and returns the status Run()
  /// returned for it (-1 when something failed on the way).
  int EndSleeper(const std::function<Status(const std::string& id)>& end) {
    std::string id;
    auto running = StartSleeper(&id);
    if (id.empty())
      return -1;
    Status st = end(id);
    EXPECT_TRUE(st) << st.error().message();
    auto status = running.get();
    EXPECT_TRUE(status) << status.error().message();
    return st && status ? *status : -1;
  }

  /// Nothing the containers left behind: no record, no litter, no root.
  void ExpectNoContainers() {
    auto all = ListContainers(paths_, true);
    ASSERT_TRUE(all);
    EXPECT_TRUE(all->empty());
    EXPECT_EQ(DirNames(store_->ContainersDir()), std::vector<std::string>{"lock"});
    auto roots = store_->ListRoots("containers");
    ASSERT_TRUE(roots);
    EXPECT_TRUE(roots->empty());
  }

  std::string dir_;
  Paths paths_;
  std::optional<Store> store_;
  FakeSandbox fake_;
};

TEST_F(RunTest, ForegroundRunRecordsTheExitCode) {
  fake_.script = [](const SandboxSpec&, FakeSandbox::Call&) -> Expected<SandboxResult> {
    SandboxResult r;
    r.exit_code = 3;
    return r;
  };
  RunOptions o = Options();
  o.name = "first";
  o.env = {"FROM_FLAG=2"};
  std::string id;
  auto status = RunIt(o, &id);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(*status, 3);
  ASSERT_EQ(id.size(), 64u);
  ContainerInfo info = Info(id);
  EXPECT_EQ(info.name, "first");
  EXPECT_EQ(info.status, "exited");
  EXPECT_EQ(info.exit_code, 3);
  EXPECT_EQ(info.image, "localhost/app:latest");
  EXPECT_EQ(info.command, (std::vector<std::string>{"/bin/app", "--serve"}));
  EXPECT_FALSE(info.finished_at.empty());
  // What the sandbox was asked to run: the image's command, environment and
  // working directory, the container's hostname, and the flags' additions.
  auto specs = fake_.specs();
  ASSERT_EQ(specs.size(), 1u);
  const SandboxSpec& s = specs[0];
  EXPECT_EQ(s.argv, (std::vector<std::string>{"/bin/app", "--serve"}));
  EXPECT_EQ(s.cwd, "/work");
  EXPECT_EQ(s.hostname, id.substr(0, 12));
  EXPECT_EQ(s.network, NetworkMode::kNone);
  auto has = [&](const std::string& e) { return std::find(s.env.begin(), s.env.end(), e) != s.env.end(); };
  EXPECT_TRUE(has("PATH=/app/bin"));
  EXPECT_TRUE(has("FROM_IMAGE=1"));
  EXPECT_TRUE(has("FROM_FLAG=2"));
  EXPECT_TRUE(has("HOSTNAME=" + id.substr(0, 12)));
  EXPECT_TRUE(s.default_capabilities);
  EXPECT_EQ(s.upper_dir, store_->ContainersDir() + "/" + id + "/upper");
  // The record keeps the image through prune; rm removes it all.
  auto roots = store_->ListRoots("containers");
  ASSERT_TRUE(roots);
  EXPECT_EQ(roots->size(), 1u);
  ASSERT_TRUE(RemoveContainer(paths_, id, false));
  ExpectNoContainers();
}

TEST_F(RunTest, CommandAndEntrypointReplaceTheImages) {
  RunOptions o = Options();
  o.command = {"echo", "hi"};
  ASSERT_TRUE(RunIt(o));
  o.entrypoint = "/bin/sh";
  o.command = {"-c", "true"};
  ASSERT_TRUE(RunIt(o));
  auto specs = fake_.specs();
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].argv, (std::vector<std::string>{"echo", "hi"}));
  EXPECT_EQ(specs[1].argv, (std::vector<std::string>{"/bin/sh", "-c", "true"}));
}

TEST_F(RunTest, RemoveOptionLeavesNothing) {
  RunOptions o = Options();
  o.remove = true;
  auto status = RunIt(o);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(*status, 0);
  ExpectNoContainers();
}

TEST_F(RunTest, ASignalledProcessGives128PlusTheSignal) {
  fake_.script = [](const SandboxSpec&, FakeSandbox::Call&) -> Expected<SandboxResult> {
    SandboxResult r;
    r.signal = SIGKILL;
    return r;
  };
  std::string id;
  auto status = RunIt(Options(), &id);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 137);
  EXPECT_EQ(Info(id).exit_code, 137);
}

TEST_F(RunTest, ACommandThatCannotRunGives127AndTheReason) {
  fake_.script = [](const SandboxSpec&, FakeSandbox::Call&) -> Expected<SandboxResult> {
    SandboxResult r;
    r.exit_code = 127;
    r.message = "exec /bin/app: no such file or directory";
    return r;
  };
  std::string id;
  auto status = RunIt(Options(), &id);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 127);
  ContainerInfo info = Info(id);
  EXPECT_EQ(info.exit_code, 127);
  EXPECT_NE(info.config_json.find("/bin/app"), std::string::npos);
}

TEST_F(RunTest, ASandboxFailureIsAnErrorAndTheRecordSaysWhy) {
  fake_.script = [](const SandboxSpec&, FakeSandbox::Call&) -> Expected<SandboxResult> {
    return Error(Errc::kSandbox, "sandbox: mount the rootfs: permission denied");
  };
  std::string id;
  auto status = RunIt(Options(), &id);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), Errc::kSandbox);
  EXPECT_NE(status.error().message().find("mount the rootfs"), std::string::npos);
  ContainerInfo info = Info(id);
  EXPECT_EQ(info.status, "exited");
  EXPECT_EQ(info.exit_code, 125);
  ASSERT_TRUE(RemoveContainer(paths_, id, false));
  // With --rm nothing stays.
  RunOptions o = Options();
  o.remove = true;
  EXPECT_FALSE(RunIt(o));
  ExpectNoContainers();
}

TEST_F(RunTest, InvalidInputCreatesNothing) {
  RunOptions bad_name = Options();
  bad_name.name = "-bad name";
  auto r = RunIt(bad_name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
  EXPECT_NE(r.error().message().find("invalid container name -bad name"), std::string::npos);

  auto nocmd = RunIt(Options("localhost/nocmd:latest"));
  ASSERT_FALSE(nocmd);
  EXPECT_EQ(nocmd.error().code(), Errc::kInvalidInput);
  EXPECT_NE(nocmd.error().message().find("no command specified"), std::string::npos);

  RunOptions relative = Options();
  relative.workdir = "relative";
  auto rel = RunIt(relative);
  ASSERT_FALSE(rel);
  EXPECT_NE(rel.error().message().find("working directory relative must be absolute"), std::string::npos);

  RunOptions user = Options();
  user.user = "nobody-here";
  EXPECT_FALSE(RunIt(user));

  auto missing = RunIt(Options("localhost/absent:latest"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::kNotFound);

  RunOptions ports = Options();
  ports.ports = {*PortMapping::Parse("127.0.0.1:1:80")};
  auto p = RunIt(ports);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("-p/--publish needs --network private"), std::string::npos);

  EXPECT_EQ(fake_.calls(), 0u);
  ExpectNoContainers();
}

TEST_F(RunTest, NamesAreUnique) {
  RunOptions o = Options();
  o.name = "web";
  std::string id;
  ASSERT_TRUE(RunIt(o, &id));
  auto again = RunIt(o);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::kInvalidInput);
  EXPECT_NE(again.error().message().find("the container name web is already in use by " + id.substr(0, 12)),
            std::string::npos)
      << again.error().message();
  auto found = ResolveContainer(paths_, "web");
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, id);
  EXPECT_EQ(*ResolveContainer(paths_, id.substr(0, 5)), id);
  ASSERT_TRUE(RemoveContainer(paths_, id, false));
  ASSERT_TRUE(RunIt(o));  // the name is free again
}

TEST_F(RunTest, StopEndsARunningContainerWithItsStopSignal) {
  std::string id;
  auto running = StartSleeper(&id, "sleeper");
  ASSERT_FALSE(id.empty());
  ContainerInfo info = Info(id);
  EXPECT_EQ(info.status, "running");
  EXPECT_GT(info.pid, 0);
  EXPECT_EQ(info.monitor_pid, ::getpid());
  // rm refuses a running container.
  auto rm = RemoveContainer(paths_, id, false);
  ASSERT_FALSE(rm);
  EXPECT_NE(rm.error().message().find("is running: stop it first or use rm -f"), std::string::npos);
  ASSERT_TRUE(StopContainer(paths_, id, 10));
  auto status = running.get();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(*status, 128 + SIGTERM);
  info = Info(id);
  EXPECT_EQ(info.status, "exited");
  EXPECT_EQ(info.exit_code, 128 + SIGTERM);
  EXPECT_EQ(info.pid, 0);
  auto waited = WaitContainer(paths_, id);
  ASSERT_TRUE(waited);
  EXPECT_EQ(*waited, 128 + SIGTERM);
  // Stopping a stopped container is fine.
  EXPECT_TRUE(StopContainer(paths_, id, 1));
  auto kill = KillContainer(paths_, id, SIGKILL);
  ASSERT_FALSE(kill);
  EXPECT_NE(kill.error().message().find("is not running"), std::string::npos);
}

TEST_F(RunTest, KillSendsTheSignal) {
  EXPECT_EQ(EndSleeper([&](const std::string& id) { return KillContainer(paths_, id, SIGUSR1); }), 128 + SIGUSR1);
}

TEST_F(RunTest, ForcedRemovalKillsARunningContainer) {
  EXPECT_EQ(EndSleeper([&](const std::string& id) { return RemoveContainer(paths_, id, true); }), 128 + SIGKILL);
  ExpectNoContainers();
}

TEST_F(RunTest, ListsAllOrOnlyTheRunningOnes) {
  ASSERT_TRUE(RunIt(Options()));
  std::string running_id;
  auto running = StartSleeper(&running_id);
  auto all = ListContainers(paths_, true);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  auto live = ListContainers(paths_, false);
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ(live->front().id, running_id);
  ASSERT_TRUE(KillContainer(paths_, running_id, SIGKILL));
  ASSERT_TRUE(running.get());
}

TEST(DetachKeys, ParsesPodmanSpellings) {
  EXPECT_EQ(*ParseDetachKeys("ctrl-p,ctrl-q"), std::string("\x10\x11"));
  EXPECT_EQ(*ParseDetachKeys("ctrl-x,a"), std::string("\x18" "a"));
  EXPECT_EQ(*ParseDetachKeys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_"), std::string("\0\x1b\x1c\x1d\x1e\x1f", 6));
  EXPECT_EQ(*ParseDetachKeys(""), "");
  for (const char* bad : {"ctrl-1", "ctrl-", "ctrl-pq", "ab", "ctrl-p,", ",ctrl-q"}) {
    auto r = ParseDetachKeys(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), Errc::kInvalidInput) << bad;
  }
}

TEST(DetachKeys, MatcherHoldsBackAPrefixAndFindsTheSequenceAnywhere) {
  DetachMatcher m("\x10\x11");
  bool detached = false;
  EXPECT_EQ(m.Feed("ab\x10", &detached), "ab");  // the ctrl-p is held back
  EXPECT_FALSE(detached);
  EXPECT_EQ(m.Feed("c", &detached), "\x10" "c");  // not followed by ctrl-q: passed on
  EXPECT_FALSE(detached);
  EXPECT_EQ(m.Feed("x\x10\x10\x11rest", &detached), "x\x10");
  EXPECT_TRUE(detached);
  DetachMatcher none("");
  EXPECT_EQ(none.Feed("\x10\x11", &detached), "\x10\x11");
  EXPECT_FALSE(detached);
}

}  // namespace
}  // namespace kiln::run
