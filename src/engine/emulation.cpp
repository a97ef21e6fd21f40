// binfmt_misc probing for multi-platform builds (emulation.h).
#include "engine/emulation.h"

#include <dirent.h>

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "kiln/fs.h"
#include "kiln/text.h"

namespace kiln::engine {
namespace {

/// What an ELF executable of an architecture looks like in its header.
struct ElfArch {
  const char* arch;     ///< GOARCH
  const char* variant;  ///< "" or the variant kiln lists
  uint8_t elf_class;    ///< 1: 32-bit, 2: 64-bit
  uint8_t data;         ///< 1: little endian, 2: big endian
  uint16_t machine;     ///< e_machine
};

constexpr ElfArch kArches[] = {
    {"amd64", "", 2, 1, 62},     {"386", "", 1, 1, 3},        {"arm64", "", 2, 1, 183},
    {"arm", "v7", 1, 1, 40},     {"ppc64le", "", 2, 1, 21},   {"ppc64", "", 2, 2, 21},
    {"s390x", "", 2, 2, 22},     {"riscv64", "", 2, 1, 243},  {"mips64le", "", 2, 1, 8},
    {"mips64", "", 2, 2, 8},     {"mipsle", "", 1, 1, 8},     {"mips", "", 1, 2, 8},
    {"loong64", "", 2, 1, 258},
};

const ElfArch* FindArch(const Platform& p) {
  Platform n = p.Normalized();
  for (const ElfArch& a : kArches)
    if (n.architecture == a.arch)
      return &a;
  return nullptr;
}

/// The first 24 bytes of an ELF executable (ET_EXEC) of `a`.
std::string ElfHeader(const ElfArch& a) {
  std::string h(24, '\0');
  h[0] = 0x7f;
  h[1] = 'E';
  h[2] = 'L';
  h[3] = 'F';
  h[4] = static_cast<char>(a.elf_class);
  h[5] = static_cast<char>(a.data);
  h[6] = 1;  // EV_CURRENT
  auto put16 = [&](size_t at, uint16_t v) {
    if (a.data == 1) {
      h[at] = static_cast<char>(v & 0xff);
      h[at + 1] = static_cast<char>(v >> 8);
    } else {
      h[at] = static_cast<char>(v >> 8);
      h[at + 1] = static_cast<char>(v & 0xff);
    }
  };
  put16(16, 2);  // ET_EXEC
  put16(18, a.machine);
  if (a.data == 1)
    h[20] = 1;  // e_version
  else
    h[23] = 1;
  return h;
}

std::optional<std::string> FromHex(const std::string& text) {
  if (text.size() % 2 != 0)
    return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    char* end = nullptr;
    std::string byte = text.substr(i, 2);
    long v = std::strtol(byte.c_str(), &end, 16);
    if (*end != '\0')
      return std::nullopt;
    out.push_back(static_cast<char>(v));
  }
  return out;
}

/// A parsed binfmt_misc entry file.
struct Entry {
  bool enabled = false;
  std::string interpreter;
  std::string flags;
  size_t offset = 0;
  std::string magic;  ///< bytes; empty for extension entries
  std::string mask;   ///< bytes; all 0xff when absent
};

std::optional<Entry> ParseEntry(const std::string& text) {
  Entry e;
  for (std::string_view l : SplitLines(text)) {
    std::string line(l);
    auto value = [&](const char* key) -> std::optional<std::string> {
      std::string k = key;
      if (line.rfind(k, 0) != 0)
        return std::nullopt;
      std::string v = line.substr(k.size());
      while (!v.empty() && v[0] == ' ')
        v.erase(0, 1);
      return v;
    };
    if (line == "enabled") {
      e.enabled = true;
    } else if (auto v = value("interpreter")) {
      e.interpreter = *v;
    } else if (auto v2 = value("flags:")) {
      e.flags = *v2;
    } else if (auto v3 = value("offset")) {
      e.offset = static_cast<size_t>(std::strtoul(v3->c_str(), nullptr, 10));
    } else if (auto v4 = value("magic")) {
      auto b = FromHex(*v4);
      if (!b)
        return std::nullopt;
      e.magic = *b;
    } else if (auto v5 = value("mask")) {
      auto b = FromHex(*v5);
      if (!b)
        return std::nullopt;
      e.mask = *b;
    }
  }
  if (e.magic.empty())
    return std::nullopt;
  if (e.mask.empty())
    e.mask.assign(e.magic.size(), '\xff');
  if (e.mask.size() != e.magic.size())
    return std::nullopt;
  return e;
}

bool Matches(const Entry& e, const std::string& header) {
  if (e.offset + e.magic.size() > header.size())
    return false;
  for (size_t k = 0; k < e.magic.size(); ++k) {
    auto m = static_cast<unsigned char>(e.mask[k]);
    if ((static_cast<unsigned char>(header[e.offset + k]) & m) != (static_cast<unsigned char>(e.magic[k]) & m))
      return false;
  }
  return true;
}

std::vector<std::string> EntryNames(const std::string& dir) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d)
    return names;
  while (struct dirent* de = ::readdir(d.get())) {
    std::string n = de->d_name;
    if (n == "." || n == ".." || n == "register" || n == "status")
      continue;
    names.push_back(n);
  }
  return names;
}

Platform PlatformOf(const ElfArch& a) {
  Platform p;
  p.os = "linux";
  p.architecture = a.arch;
  p.variant = a.variant;
  return p.Normalized();
}

}  // namespace

std::string BinfmtMiscDir() {
  const char* e = std::getenv("KILN_BINFMT_MISC_DIR");
  return e && *e ? std::string(e) : std::string("/proc/sys/fs/binfmt_misc");
}

bool RunsNatively(const Platform& p) {
  Platform host = Platform::Host();
  Platform n = p.Normalized();
  if (n.os != "linux")
    return false;
  if (n.architecture == host.architecture)
    return n.architecture != "arm" || host.Matches(n);
  return host.architecture == "amd64" && n.architecture == "386";
}

std::optional<BinfmtHandler> FindBinfmtHandler(const Platform& p) {
  const ElfArch* arch = FindArch(p);
  if (!arch)
    return std::nullopt;
  std::string dir = BinfmtMiscDir();
  auto status = ReadFile(JoinPath(dir, "status"), 4096);
  if (!status || status->rfind("enabled", 0) != 0)
    return std::nullopt;
  std::string header = ElfHeader(*arch);
  for (const std::string& name : EntryNames(dir)) {
    auto text = ReadFile(JoinPath(dir, name), 64 * 1024);
    if (!text)
      continue;
    auto e = ParseEntry(*text);
    if (!e || !e->enabled || !Matches(*e, header))
      continue;
    return BinfmtHandler{name, e->interpreter, e->flags};
  }
  return std::nullopt;
}

Status CheckCanRun(const Platform& p) {
  if (RunsNatively(p))
    return Ok();
  Platform n = p.Normalized();
  std::string what = n.str() + ": this machine cannot run " + n.architecture + " binaries";
  std::string how = "install qemu-user-static (Debian: apt-get install qemu-user-static binfmt-support) or "
                    "drop RUN steps for that platform";
  if (n.os != "linux")
    return Error(Errc::kInvalidInput, n.str() + ": only linux images can be built (RUN steps need a linux kernel)");
  auto h = FindBinfmtHandler(n);
  if (!h)
    return Error(Errc::kInvalidInput, what + ": " + how);
  if (h->flags.find('F') == std::string::npos)
    return Error(Errc::kInvalidInput, what + ": the binfmt_misc handler " + BinfmtMiscDir() + "/" + h->name +
                                          " lacks the F flag (it cannot start inside a container): re-register "
                                          "it with F (Debian's qemu-user-static does so) or " +
                                          "drop RUN steps for that platform");
  return Ok();
}

std::vector<RunnablePlatform> RunnablePlatforms() {
  std::vector<RunnablePlatform> out;
  out.push_back({Platform::Host(), std::nullopt});
  for (const ElfArch& a : kArches) {
    Platform p = PlatformOf(a);
    if (p.architecture == Platform::Host().architecture)
      continue;
    if (RunsNatively(p)) {
      out.push_back({p, std::nullopt});
      continue;
    }
    auto h = FindBinfmtHandler(p);
    if (h && h->flags.find('F') != std::string::npos)
      out.push_back({p, h});
  }
  return out;
}

}  // namespace kiln::engine
