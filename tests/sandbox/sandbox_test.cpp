// Integration tests of the real sandbox (suite 'integration'): a busybox
// rootfs built from the host's /bin/busybox (Debian busybox-static), run as
// root and, through run_as_test_user.sh, as $KILN_TEST_USER. main() enters
// kiln's user namespace first, exactly as the kiln CLI does.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/sandbox.h"

namespace kiln {
namespace {

std::string g_base;  // busybox rootfs shared by the tests (read-only lower dir)

struct Outcome {
  SandboxResult result;
  std::string out;
  std::string err;
};

bool HaveBusybox() { return ::access("/bin/busybox", X_OK) == 0; }

Status BuildBusyboxRootfs(const std::string& root) {
  KILN_TRY(MakeDirs(root + "/bin"));
  KILN_TRY(MakeDirs(root + "/etc"));
  KILN_TRY(MakeDirs(root + "/tmp"));
  ::chmod((root + "/tmp").c_str(), 01777);
  KILN_ASSIGN_OR_RETURN(std::string image, ReadFile("/bin/busybox"));
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(root + "/bin/busybox", O_WRONLY | O_CREAT | O_TRUNC, 0755));
  KILN_TRY(WriteAll(fd.get(), image));
  FILE* list = ::popen("/bin/busybox --list", "r");
  if (!list)
    return Error::FromErrno("busybox --list");
  char line[256];
  while (std::fgets(line, sizeof line, list)) {
    std::string name(line);
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r'))
      name.pop_back();
    if (name.empty() || name == "busybox")
      continue;
    ::symlink("busybox", (root + "/bin/" + name).c_str());
  }
  ::pclose(list);
  KILN_ASSIGN_OR_RETURN(UniqueFd pw, OpenFile(root + "/etc/passwd", O_WRONLY | O_CREAT | O_TRUNC, 0644));
  KILN_TRY(WriteAll(pw.get(), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"));
  return Ok();
}

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveBusybox() || !g_base.empty())
      return;
    auto dir = TempDir::Create("kiln-sandbox-test-base-");
    ASSERT_TRUE(dir) << dir.error().message();
    g_base = dir->release() + "/rootfs";
    auto st = BuildBusyboxRootfs(g_base);
    ASSERT_TRUE(st) << st.error().message();
  }

  void SetUp() override {
    if (!HaveBusybox())
      GTEST_SKIP() << "/bin/busybox missing (apt-get install busybox-static)";
    auto dir = TempDir::Create("kiln-sandbox-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    scratch_ = std::make_unique<TempDir>(std::move(*dir));
    upper_ = scratch_->path() + "/upper";
    work_ = scratch_->path() + "/work";
    ASSERT_TRUE(MakeDirs(upper_));
    ASSERT_TRUE(MakeDirs(work_));
  }

  /// A spec on the overlay of the busybox rootfs.
  SandboxSpec Spec(const std::string& script) {
    SandboxSpec s;
    s.lower_dirs = {g_base};
    s.upper_dir = upper_;
    s.work_dir = work_;
    s.argv = {"/bin/sh", "-c", script};
    s.env = {"PATH=/bin"};
    return s;
  }

  /// Runs the spec with stdout/stderr captured through pipes.
  Outcome Exec(SandboxSpec s) {
    Outcome r;
    int out[2], err[2];
    EXPECT_EQ(0, ::pipe2(out, O_CLOEXEC));
    EXPECT_EQ(0, ::pipe2(err, O_CLOEXEC));
    UniqueFd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
    s.stdout_fd = out_w.get();
    s.stderr_fd = err_w.get();
    // Read while the sandbox runs: a pipe may hold as little as two
    // buffers (a user over fs.pipe-user-pages-soft gets no more), and a
    // process blocked writing to it would never exit.
    std::thread out_reader([&] { r.out = ReadAll(out_r.get()).value_or(""); });
    std::thread err_reader([&] { r.err = ReadAll(err_r.get()).value_or(""); });
    auto res = RunSandbox(s);
    out_w.reset();
    err_w.reset();
    out_reader.join();
    err_reader.join();
    EXPECT_TRUE(res) << (res ? "" : res.error().message());
    if (res)
      r.result = *res;
    return r;
  }

  /// Runs the spec: it must exit 0 and print exactly `want`.
  void ExpectPrints(SandboxSpec s, const std::string& want) {
    Outcome r = Exec(std::move(s));
    EXPECT_EQ(0, r.result.exit_code) << r.err;
    EXPECT_EQ(want, r.out);
  }

  std::unique_ptr<TempDir> scratch_;
  std::string upper_;
  std::string work_;
};

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::string cmd = "ls -A '" + dir + "' 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  char line[512];
  while (p && std::fgets(line, sizeof line, p)) {
    std::string n(line);
    n.pop_back();
    names.push_back(n);
  }
  if (p)
    ::pclose(p);
  return names;
}

TEST_F(SandboxTest, RunsAsRootInBusyboxRootfs) {
  Outcome r = Exec(Spec("id -u"));
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_EQ("0\n", r.out);
  EXPECT_EQ(RootfsDriver::kOverlay, r.result.driver);
}

TEST_F(SandboxTest, UpperDirReceivesWritesAndLowerIsUntouched) {
  SandboxSpec s = Spec("echo hello > /newfile && rm /bin/true && mkdir -p /var/x");
  s.etc_hosts = "127.0.0.1 localhost\n";
  s.etc_resolv_conf = "nameserver 10.0.2.3\n";
  s.etc_hostname = "kiln\n";
  Outcome r = Exec(s);
  ASSERT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_EQ("hello\n", ReadFile(upper_ + "/newfile").value_or(""));
  EXPECT_FALSE(PathExists(g_base + "/newfile"));
  EXPECT_TRUE(PathExists(g_base + "/bin/true"));
  // The deletion is a whiteout in the upper dir.
  struct stat st;
  ASSERT_EQ(0, ::lstat((upper_ + "/bin/true").c_str(), &st));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  // Mount stubs (/proc, /dev, /sys, /etc/hosts, ...) did not stay in the layer.
  for (const char* stub : {"/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"})
    EXPECT_FALSE(PathExists(upper_ + stub)) << stub;
}

TEST_F(SandboxTest, GeneratedEtcFilesAreVisibleAndReadOnly) {
  SandboxSpec s = Spec("cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname; echo x >> /etc/hosts || echo ro");
  s.etc_hosts = "127.0.0.1 localhost\n";
  s.etc_resolv_conf = "nameserver 10.0.2.3\n";
  s.etc_hostname = "box\n";
  s.hostname = "box";
  ExpectPrints(s, "127.0.0.1 localhost\nnameserver 10.0.2.3\nbox\nbox\nro\n");
}

TEST_F(SandboxTest, NoHostPathWritableExceptMounts) {
  auto canary_dir = TempDir::Create("kiln-canary-");
  ASSERT_TRUE(canary_dir);
  std::string rw = canary_dir->path() + "/rw";
  std::string ro = canary_dir->path() + "/ro";
  ASSERT_TRUE(MakeDirs(rw));
  ASSERT_TRUE(MakeDirs(ro));
  SandboxSpec s = Spec(
      "touch /mnt/rw/ok || exit 10; touch /mnt/ro/bad 2>/dev/null && exit 11; "
      "ls " + canary_dir->path() + " 2>/dev/null && exit 12; "
      "for d in /bin /etc /tmp /; do touch $d/kiln-w || exit 13; done; "
      "echo x > /sys/kernel/x 2>/dev/null && exit 14; touch /proc/x 2>/dev/null && exit 15; exit 0");
  s.mounts.push_back({SandboxMount::Type::kBind, rw, "/mnt/rw", false, ""});
  s.mounts.push_back({SandboxMount::Type::kBind, ro, "/mnt/ro", true, ""});
  s.mounts.push_back({SandboxMount::Type::kTmpfs, "", "/scratch", false, "size=1m"});
  Outcome r = Exec(s);
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_TRUE(PathExists(rw + "/ok"));
  EXPECT_FALSE(PathExists(ro + "/bad"));
  // Writes to the rootfs went to the upper dir, never to a host path.
  EXPECT_TRUE(PathExists(upper_ + "/bin/kiln-w"));
  EXPECT_FALSE(PathExists(g_base + "/bin/kiln-w"));
  // The mount targets were stubs: gone from the layer.
  EXPECT_FALSE(PathExists(upper_ + "/mnt"));
  EXPECT_FALSE(PathExists(upper_ + "/scratch"));
}

TEST_F(SandboxTest, CannotSeeHostProcesses) {
  Outcome r = Exec(Spec("ls /proc | grep -c '^[0-9]'; ps -o pid | wc -l"));
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  int pids = std::atoi(r.out.c_str());
  EXPECT_GE(pids, 2);
  EXPECT_LE(pids, 4);  // pid 1 (init), sh, ls, grep at most
}

TEST_F(SandboxTest, NetworkNoneHasOnlyLoopback) {
  ExpectPrints(Spec("ls /sys/class/net; cat /sys/class/net/lo/operstate >/dev/null && ip link show lo | grep -c UP"), "lo\n1\n");
}

TEST_F(SandboxTest, HostNetworkIsShared) {
  SandboxSpec s = Spec("ls /sys/class/net | wc -l");
  s.network = NetworkMode::kHost;
  Outcome r = Exec(s);
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_EQ(ListDir("/sys/class/net").size(), static_cast<size_t>(std::atoi(r.out.c_str())));
}

TEST_F(SandboxTest, PrivateNetworkHasTap) {
  if (NetworkHelper().empty())
    GTEST_SKIP() << "neither slirp4netns nor pasta is usable (installed, /dev/net/tun read-write)";
  SandboxSpec s = Spec("ls /sys/class/net | sort | tr '\\n' ' '");
  s.network = NetworkMode::kPrivate;
  Outcome r = Exec(s);
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_NE(std::string::npos, r.out.find("lo")) << r.out;
  EXPECT_GE(r.out.size(), 4u) << "expected a second interface: " << r.out;
}

TEST_F(SandboxTest, HelperExeIsNotWritable) {
  // As root in the sandbox (the worst case): pid 1 is the helper.
  Outcome r = Exec(Spec("echo x >> /proc/1/exe && exit 1; readlink /proc/1/exe; exit 0"));
  EXPECT_EQ(0, r.result.exit_code) << r.out << r.err;
  std::string helper = SandboxHelperPath().value_or("");
  ASSERT_FALSE(helper.empty());
  auto bin = ReadFile(helper);
  ASSERT_TRUE(bin);
  EXPECT_EQ(std::string::npos, bin->find("\nx\n", bin->size() - 3));
}

TEST_F(SandboxTest, NoFdLeaks) {
  // A non-CLOEXEC fd in the caller must not reach the sandbox.
  int leak = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leak, 0);
  Outcome r = Exec(Spec("ls /proc/self/fd | sort -n | tr '\\n' ' '"));
  ::close(leak);
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_EQ("0 1 2 3 ", r.out);  // 3 is ls's own directory fd
}

TEST_F(SandboxTest, ReportsExitStatus) {
  Outcome r = Exec(Spec("exit 7"));
  EXPECT_EQ(7, r.result.exit_code);
  EXPECT_EQ(0, r.result.signal);
  EXPECT_EQ(7, r.result.status());
}

TEST_F(SandboxTest, ReportsSignalDeath) {
  Outcome r = Exec(Spec("kill -9 $$"));
  EXPECT_EQ(9, r.result.signal);
  EXPECT_EQ(137, r.result.status());
}

TEST_F(SandboxTest, ExecErrorsAre126And127) {
  SandboxSpec s = Spec("");
  s.argv = {"no-such-command"};
  Outcome r = Exec(s);
  EXPECT_EQ(127, r.result.exit_code);
  EXPECT_NE(std::string::npos, r.result.message.find("not found")) << r.result.message;
  s.argv = {"/etc/passwd"};  // not executable
  r = Exec(s);
  EXPECT_EQ(126, r.result.exit_code);
  EXPECT_NE(std::string::npos, r.result.message.find("ermission denied")) << r.result.message;
}

TEST_F(SandboxTest, SetupFailureIsAnError) {
  SandboxSpec s = Spec("true");
  s.lower_dirs = {scratch_->path() + "/missing-layer"};
  auto res = RunSandbox(s);
  ASSERT_FALSE(res);
  EXPECT_EQ(Errc::kSandbox, res.error().code());
  EXPECT_NE(std::string::npos, res.error().message().find("missing-layer")) << res.error().message();
}

TEST_F(SandboxTest, UserSwitchingWithSubordinateIds) {
  auto maps = ReadIdMappings(false);
  ASSERT_TRUE(maps);
  bool mapped = false;
  for (const auto& m : *maps)
    mapped = mapped || (m.container_id <= 1000 && 1000 - m.container_id < m.size);
  if (!mapped)
    GTEST_SKIP() << "uid 1000 is not mapped (no /etc/subuid range)";
  SandboxSpec s = Spec("id -u; id -g; id -G; touch /tmp/file-of-1000; touch /bin/x 2>/dev/null || echo denied");
  s.uid = 1000;
  s.gid = 1000;
  s.supplementary_gids = {1000, 1001};
  Outcome r = Exec(s);
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_EQ("1000\n1000\n1000 1001\ndenied\n", r.out);
  struct stat st;
  ASSERT_EQ(0, ::stat((upper_ + "/tmp/file-of-1000").c_str(), &st));
  // Seen from kiln's namespace the owner is 1000, i.e. on the host the mapped
  // id (e.g. 100999 for a 100000:65536 subuid range).
  EXPECT_EQ(1000u, st.st_uid);
  EXPECT_EQ(1000u, st.st_gid);
  if (std::getenv("KILN_SANDBOX_TEST_KEEP")) {  // to check the host-side owner by hand
    std::printf("kept upper dir: %s\n", upper_.c_str());
    (void)scratch_->release();
  }
}

TEST_F(SandboxTest, CapabilitiesAreDockersDefault) {
  ExpectPrints(Spec("grep -E '^Cap(Inh|Bnd|Amb)' /proc/self/status | tr -s '\\t' ' '"), "CapInh: 0000000000000000\nCapBnd: 00000000a80425fb\nCapAmb: 0000000000000000\n");
}

TEST_F(SandboxTest, WorkdirIsCreated) {
  SandboxSpec s = Spec("pwd");
  s.cwd = "/work/dir";
  Outcome r = Exec(s);
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_EQ("/work/dir\n", r.out);
  EXPECT_TRUE(PathExists(upper_ + "/work/dir"));  // kept, as Docker does
}

TEST_F(SandboxTest, MinimalDev) {
  Outcome r = Exec(Spec("ls /dev | tr '\\n' ' '; echo x > /dev/null && head -c 4 /dev/zero | wc -c"));
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  for (const char* n : {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd", "stdin"})
    EXPECT_NE(std::string::npos, r.out.find(n)) << n << " in " << r.out;
  EXPECT_NE(std::string::npos, r.out.find(" 4\n")) << r.out;
}

TEST_F(SandboxTest, DirectoryRootfsForCopySnapshotter) {
  std::string root = scratch_->path() + "/copy";
  ASSERT_TRUE(BuildBusyboxRootfs(root));
  SandboxSpec s;
  s.rootfs_dir = root;
  s.argv = {"/bin/sh", "-c", "echo x > /made; id -u"};
  s.env = {"PATH=/bin"};
  Outcome r = Exec(s);
  EXPECT_EQ(0, r.result.exit_code) << r.err;
  EXPECT_EQ("0\n", r.out);
  EXPECT_EQ(RootfsDriver::kDirectory, r.result.driver);
  EXPECT_TRUE(PathExists(root + "/made"));
  EXPECT_FALSE(PathExists(root + "/proc"));  // stub removed
}

TEST_F(SandboxTest, ForcedFuseOverlayfs) {
  if (::access("/usr/bin/fuse-overlayfs", X_OK) != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0)
    GTEST_SKIP() << "fuse-overlayfs or /dev/fuse missing";
  SandboxSpec s = Spec("echo fuse > /f; cat /f");
  s.driver = RootfsDriver::kFuseOverlayfs;
  auto res = RunSandbox(s);
  if (!res)
    GTEST_SKIP() << "fuse-overlayfs not usable here: " << res.error().message();
  EXPECT_EQ(0, res->exit_code);
  EXPECT_EQ(RootfsDriver::kFuseOverlayfs, res->driver);
  EXPECT_TRUE(PathExists(upper_ + "/f"));
}

TEST_F(SandboxTest, SymlinkedProcIsRefused) {
  std::string root = scratch_->path() + "/evil";
  ASSERT_TRUE(BuildBusyboxRootfs(root));
  ASSERT_EQ(0, ::symlink("/", (root + "/proc").c_str()));
  SandboxSpec s;
  s.rootfs_dir = root;
  s.argv = {"/bin/true"};
  auto res = RunSandbox(s);
  ASSERT_FALSE(res);
  EXPECT_NE(std::string::npos, res.error().message().find("ordinary directory")) << res.error().message();
}

TEST_F(SandboxTest, ProcIsMasked) {
  if (!PathExists("/proc/timer_list"))
    GTEST_SKIP() << "/proc/timer_list missing on this kernel";
  // timer_list is world-readable and non-empty on the host.
  ExpectPrints(Spec("wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro"), "0\nro\n");
}

TEST_F(SandboxTest, InvalidSpecIsRejected) {
  SandboxSpec s = Spec("true");
  s.uid = 4294967295u;
  auto res = RunSandbox(s);
  ASSERT_FALSE(res);
  EXPECT_EQ(Errc::kInvalidInput, res.error().code());
  s = Spec("true");
  s.cwd = "/a/../b";
  EXPECT_FALSE(RunSandbox(s));
}

// kiln run -t: the pty comes from the sandbox's own devpts, so `tty` in
// the process names it as the process sees it.
TEST_F(SandboxTest, TtyIsAPtyOfTheSandboxDevpts) {
  SandboxSpec s = Spec("tty; test -t 0 && test -t 1 && echo both-terminals");
  s.tty = true;
  UniqueFd master;
  s.on_tty = [&](UniqueFd m) { master = std::move(m); };
  auto res = RunSandbox(s);
  ASSERT_TRUE(res) << res.error().message();
  ASSERT_TRUE(master);
  EXPECT_EQ(0, res->exit_code);
  ::fcntl(master.get(), F_SETFL, O_NONBLOCK);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(master.get(), buf, sizeof buf)) > 0)
    out.append(buf, static_cast<size_t>(n));
  EXPECT_NE(std::string::npos, out.find("/dev/pts/0")) << out;
  EXPECT_NE(std::string::npos, out.find("both-terminals")) << out;
  EXPECT_EQ(std::string::npos, out.find('\0')) << out;
}

// CVE-2024-21626: a working directory through a /proc magic link is an
// error that names it (not a bare status 125).
TEST_F(SandboxTest, WorkdirThroughProcMagicLinkIsRefusedByName) {
  for (const char* cwd : {"/proc/self/fd/3", "/proc/self/cwd", "/proc/1/root"}) {
    SandboxSpec s = Spec("pwd");
    s.cwd = cwd;
    auto res = RunSandbox(s);
    ASSERT_FALSE(res) << cwd << " ran";
    EXPECT_NE(std::string::npos, res.error().message().find(std::string("working directory ") + cwd))
        << res.error().message();
  }
}

// A uid outside the user namespace's mapping: refused by name up front.
TEST_F(SandboxTest, UnmappedUidIsRefusedByName) {
  auto maps = ReadIdMappings(false);
  ASSERT_TRUE(maps);
  uint64_t end = 0;
  for (const auto& m : *maps)
    end = std::max<uint64_t>(end, uint64_t(m.container_id) + m.size);
  if (end >= 4294967295u)
    GTEST_SKIP() << "every uid is mapped here (real root)";
  SandboxSpec s = Spec("true");
  s.uid = static_cast<uint32_t>(end);
  auto res = RunSandbox(s);
  ASSERT_FALSE(res);
  EXPECT_EQ(Errc::kInvalidInput, res.error().code());
  EXPECT_NE(std::string::npos, res.error().message().find("uid " + std::to_string(end) + " is not mapped"))
      << res.error().message();
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  // As the kiln CLI: into the user namespace before any thread exists.
  if (auto st = kiln::EnterUserNamespace(argc, argv); !st) {
    std::fprintf(stderr, "sandbox_test: %s\n", st.error().message().c_str());
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  if (!kiln::g_base.empty())
    (void)kiln::RemoveAll(kiln::DirName(kiln::g_base));
  return rc;
}
