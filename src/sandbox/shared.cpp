// Helpers shared by the kiln-sandbox helper (init.cpp) and the parent side
// of the sandbox (probe.cpp, spawn.cpp), and the bounding-set drop to
// Docker's default capabilities (kiln/sandbox.h) that `kiln exec`
// (src/run/exec.cpp) uses too: one keep-list for both.
#include "sandbox/shared.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <iterator>

#include "kiln/sandbox.h"

namespace kiln {

uint64_t DefaultCapabilityMask() {
  uint64_t mask = 0;
  for (int k : kDefaultCapabilities)
    mask |= uint64_t(1) << k;
  return mask;
}

int DropToCapabilities(uint64_t keep) {
  for (int cap = 0; cap <= 63; ++cap) {
    if (keep & (uint64_t(1) << cap))
      continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return cap;
  }
  return -1;
}

int DropToDefaultCapabilities() { return DropToCapabilities(DefaultCapabilityMask()); }

int CapabilityByName(const std::string& name) {
  static const char* const kNames[] = {
      "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
      "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
      "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
      "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
      "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
      "CHECKPOINT_RESTORE"};
  std::string n;
  for (char c : name)
    n.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (n.compare(0, 4, "CAP_") == 0)
    n = n.substr(4);
  if (n == "ALL")
    return -2;
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (n == kNames[i])
      return static_cast<int>(i);
  return -1;
}

namespace {
struct RlimitNameEntry {
  const char* name;
  int resource;
};
constexpr RlimitNameEntry kRlimits[] = {
    {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},         {"data", RLIMIT_DATA},
    {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},     {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},     {"nofile", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},         {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
    {"as", RLIMIT_AS}};
}  // namespace

int RlimitByName(const std::string& name) {
  for (const auto& e : kRlimits)
    if (name == e.name)
      return e.resource;
  return -1;
}

const char* RlimitName(int resource) {
  for (const auto& e : kRlimits)
    if (resource == e.resource)
      return e.name;
  return "?";
}

namespace sandbox {

std::vector<std::string> SplitOn(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  for (size_t j; (j = text.find(sep, i)) != std::string::npos; i = j + 1)
    out.push_back(text.substr(i, j - i));
  out.push_back(text.substr(i));
  return out;
}

std::string FindHostBinary(const char* name) {
  for (const char* dir : {"/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"}) {
    std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0)
      return p;
  }
  return {};
}

}  // namespace sandbox
}  // namespace kiln
