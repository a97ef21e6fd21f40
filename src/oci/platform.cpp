// Platforms (include/kiln/oci.h): parsing os/arch[/variant] as containerd's
// platforms package does, the host's platform, normalization, matching with
// compatible fallbacks, and picking an index's manifest for a platform.
#include <sys/utsname.h>

#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "kiln/oci.h"

namespace kiln {

namespace {

// ============================================================ platform rules

const std::set<std::string>& KnownOs() {
  static const std::set<std::string> k = {"aix",     "android", "darwin", "dragonfly", "freebsd",
                                          "hurd",    "illumos", "ios",    "js",        "linux",
                                          "nacl",    "netbsd",  "openbsd", "plan9",    "solaris",
                                          "wasip1",  "windows", "zos"};
  return k;
}

const std::set<std::string>& KnownArch() {
  static const std::set<std::string> k = {
      "386",     "amd64",   "amd64p32", "arm",      "armbe",  "arm64",    "arm64be", "loong64",
      "mips",    "mipsle",  "mips64",   "mips64le", "mips64p32", "mips64p32le", "ppc",
      "ppc64",   "ppc64le", "riscv",    "riscv64",  "s390",   "s390x",    "sparc",   "sparc64",
      "wasm",    "i386",    "x86_64",   "x86-64",   "aarch64", "armhf",   "armel"};
  return k;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void NormalizeArch(std::string& arch, std::string& variant) {
  arch = Lower(arch);
  variant = Lower(variant);
  if (arch == "i386" || arch == "i686") {
    arch = "386";
    variant.clear();
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1")
      variant.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8" || variant == "v8.0")
      variant.clear();
    else if (variant == "9" || variant == "9.0" || variant == "v9.0")
      variant = "v9";
  } else if (arch == "armhf") {
    arch = "arm";
    variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty() || variant == "7")
      variant = "v7";
    else if (variant == "5" || variant == "6" || variant == "8")
      variant = "v" + variant;
  }
}

int VariantNumber(const std::string& v) {
  if (v.size() < 2 || v[0] != 'v')
    return -1;
  int n = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(v[i])))
      return -1;
    n = n * 10 + (v[i] - '0');
    if (n > 1000)
      return -1;
  }
  return n;
}

/// 0 = exact, higher = a compatible fallback, -1 = no match.
int MatchScore(const Platform& wanted_in, const Platform& image_in) {
  Platform wanted = wanted_in.Normalized();
  Platform image = image_in.Normalized();
  if (wanted.os != image.os)
    return -1;
  if (wanted.architecture == image.architecture) {
    if (wanted.variant == image.variant)
      return 0;
    if (wanted.variant.empty())
      return 1;
    int w = VariantNumber(wanted.variant);
    int i = image.variant.empty() ? (image.architecture == "amd64" ? 1 : -1) : VariantNumber(image.variant);
    if (w >= 0 && i >= 0 && i < w)
      return 1 + (w - i);
    return -1;
  }
  // 64-bit hosts that also run the 32-bit images (containerd's Only()).
  if (wanted.architecture == "amd64" && image.architecture == "386")
    return 50;
  if (wanted.architecture == "arm64" && image.architecture == "arm") {
    int i = VariantNumber(image.variant);
    return i >= 5 && i <= 8 ? 50 + (8 - i) : -1;
  }
  return -1;
}

}  // namespace

// ============================================================ Platform

Expected<Platform> Platform::Parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidInput, "invalid platform \"" + std::string(text) + "\": " + why);
  };
  if (text.empty())
    return bad("empty");
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t slash = text.find('/', start);
    parts.emplace_back(Lower(text.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                                : slash - start)));
    if (slash == std::string_view::npos)
      break;
    start = slash + 1;
  }
  if (parts.size() > 3)
    return bad("expected os/arch[/variant]");
  for (const auto& p : parts) {
    if (p.empty())
      return bad("empty component");
    for (char c : p)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
        return bad("invalid character in \"" + p + "\"");
  }
  Platform out;
  if (parts.size() == 1) {
    if (KnownOs().count(parts[0]) || parts[0] == "macos") {
      Platform host = Host();
      out.os = parts[0];
      out.architecture = host.architecture;
      out.variant = host.variant;
    } else if (KnownArch().count(parts[0])) {
      out.os = "linux";
      out.architecture = parts[0];
    } else {
      return bad("unknown operating system or architecture");
    }
    return out.Normalized();
  }
  out.os = parts[0];
  out.architecture = parts[1];
  if (parts.size() == 3)
    out.variant = parts[2];
  if (!KnownOs().count(out.os) && out.os != "macos")
    return bad("unknown operating system \"" + out.os + "\"");
  if (!KnownArch().count(out.architecture))
    return bad("unknown architecture \"" + out.architecture + "\"");
  return out.Normalized();
}

Platform Platform::Host() {
  static const Platform host = [] {
    Platform p;
    p.os = "linux";
    struct utsname u;
    p.architecture = ::uname(&u) == 0 ? u.machine : "amd64";
    if (p.architecture.rfind("armv", 0) == 0) {
      // armv7l -> arm/v7
      p.variant = std::string("v") + p.architecture[4];
      p.architecture = "arm";
    } else if (p.architecture == "ppc64le" || p.architecture == "s390x" ||
               p.architecture == "riscv64") {
      // already GOARCH spelling
    }
    return p.Normalized();
  }();
  return host;
}

Platform Platform::Normalized() const {
  Platform p = *this;
  p.os = Lower(p.os);
  if (p.os == "macos")
    p.os = "darwin";
  NormalizeArch(p.architecture, p.variant);
  return p;
}

bool Platform::Matches(const Platform& image) const { return MatchScore(*this, image) >= 0; }

std::string Platform::str() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty())
    s += "/" + variant;
  return s;
}

Expected<Descriptor> Index::SelectPlatform(const Platform& wanted) const {
  const Descriptor* best = nullptr;
  int best_score = -1;
  std::string present;
  for (const auto& d : manifests) {
    if (!IsManifestMediaType(d.media_type))
      continue;  // nested indexes, attestations with unknown types
    if (!d.platform) {
      if (!best)
        best = &d, best_score = 1000;
      continue;
    }
    // BuildKit's attestation manifests say "unknown/unknown".
    if (d.platform->os == "unknown")
      continue;
    if (!present.empty())
      present += ", ";
    present += d.platform->str();
    int s = MatchScore(wanted, *d.platform);
    if (s >= 0 && (best_score < 0 || s < best_score)) {
      best = &d;
      best_score = s;
    }
  }
  if (!best)
    return Error(Errc::kNotFound, "no image for platform " + wanted.str() +
                                      (present.empty() ? std::string() : " (available: " + present + ")"));
  return *best;
}

}  // namespace kiln
