// The package scanners: which files of an image are package databases,
// and what each says (attest.h). Pure: bytes in, packages out.
#include <algorithm>
#include <cstring>
#include <tuple>

#include <nlohmann/json.hpp>

#include "kiln/attest.h"
#include "kiln/keyvalue.h"
#include "kiln/text.h"

namespace kiln::attest {

namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// The Debian/RFC 822 shape shared by dpkg's status, apk's installed (one
/// letter keys) and Python's METADATA: stanzas of "Key: value" lines
/// separated by blank lines; a line starting with a space or tab continues
/// the previous value. `fn(fields, first_line)` is called per stanza;
/// `single` stops after the first (METADATA: the body follows).
template <typename Fn>
void ForEachStanza(std::string_view text, char sep, bool single, Fn fn) {
  std::map<std::string, std::string> fields;
  std::string last;
  size_t line_no = 0, first = 0;
  auto flush = [&] {
    if (!fields.empty())
      fn(fields, first);
    fields.clear();
    last.clear();
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    if (Trim(line).empty()) {
      bool had = !fields.empty();
      flush();
      if (single && had)
        return;
      continue;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !last.empty()) {
      fields[last] += "\n" + std::string(Trim(line));
      continue;
    }
    size_t colon = line.find(sep);
    if (colon == std::string_view::npos || colon == 0)
      continue;
    if (fields.empty())
      first = line_no;
    last = std::string(Trim(line.substr(0, colon)));
    fields[last] = std::string(Trim(line.substr(colon + 1)));
  }
  flush();
}

std::string Get(const std::map<std::string, std::string>& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? std::string() : it->second;
}

/// dpkg's package states whose files are on disk; "config-files" and
/// "not-installed" leave only conffiles or nothing.
bool DpkgInstalled(const std::string& status) {
  size_t sp = status.rfind(' ');
  std::string state = sp == std::string::npos ? status : status.substr(sp + 1);
  return state == "installed" || state == "half-installed" || state == "unpacked" || state == "half-configured" ||
         state == "triggers-awaited" || state == "triggers-pending";
}

// ------------------------------------------------------------ Go build info

constexpr std::string_view kGoMagic("\xff Go buildinf:", 14);
constexpr size_t kGoMaxInfo = size_t(4) << 20;

/// Reads an unsigned LEB128 varint at `pos`; false when truncated.
bool Uvarint(std::string_view d, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *pos < d.size(); shift += 7) {
    auto b = static_cast<uint8_t>(d[(*pos)++]);
    v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

/// How many bytes from the magic on the build info needs (0: not a Go >=
/// 1.18 header; SIZE_MAX: not known yet, read more).
size_t GoInfoSize(std::string_view d) {
  if (d.size() < 32)
    return SIZE_MAX;
  auto ptr = static_cast<uint8_t>(d[14]);
  auto flags = static_cast<uint8_t>(d[15]);
  if ((ptr != 4 && ptr != 8) || (flags & 2) == 0)
    return 0;
  size_t pos = 32;
  for (int i = 0; i < 2; ++i) {
    uint64_t n = 0;
    if (!Uvarint(d, &pos, &n))
      return d.size() >= 48 ? 0 : SIZE_MAX;
    if (n > kGoMaxInfo)
      return 0;
    pos += n;
  }
  return pos;
}

/// Finds the build info of a Go binary while the file streams by: the
/// magic at a 16-byte aligned offset (where the linker puts the
/// .go.buildinfo section), then the bytes GoInfoSize() asks for.
class GoReader : public layer::FileReader {
 public:
  bool Add(std::string_view chunk) override {
    if (offset_ == 0 && chunk.size() >= 4 && chunk.substr(0, 4) != std::string_view("\x7f" "ELF", 4))
      return false;
    if (found_) {
      buf_.append(chunk.substr(0, std::min(chunk.size(), kGoMaxInfo - std::min(kGoMaxInfo, buf_.size()))));
      offset_ += chunk.size();
      return Wanting();
    }
    // Search the chunk with the last bytes of the one before in front.
    std::string window = tail_ + std::string(chunk);
    uint64_t window_start = offset_ - tail_.size();
    size_t at = 0;
    while ((at = window.find(kGoMagic, at)) != std::string::npos) {
      if ((window_start + at) % 16 == 0) {
        found_ = true;
        buf_ = window.substr(at);
        offset_ += chunk.size();
        if (Wanting())
          return true;
        if (!buf_.empty())
          return false;
        found_ = false;  // a copy of the magic that is no header: go on
      }
      ++at;
    }
    offset_ += chunk.size();
    tail_ = window.substr(window.size() - std::min(window.size(), kGoMagic.size() - 1));
    return true;
  }
  std::string Finish() override { return found_ ? buf_ : std::string(); }

 private:
  /// true: more bytes are needed; buf_ cleared when this is no build info.
  bool Wanting() {
    size_t need = GoInfoSize(buf_);
    if (need == 0) {
      buf_.clear();
      return false;
    }
    if (need == SIZE_MAX)
      return buf_.size() < kGoMaxInfo;
    if (buf_.size() >= need) {
      buf_.resize(need);
      return false;
    }
    return buf_.size() < kGoMaxInfo;
  }

  uint64_t offset_ = 0;
  bool found_ = false;
  std::string tail_;
  std::string buf_;
};

/// Reads a database file whole.
class WholeReader : public layer::FileReader {
 public:
  bool Add(std::string_view chunk) override {
    if (data_.size() + chunk.size() > kMax) {
      truncated_ = true;
      return false;
    }
    data_.append(chunk);
    return true;
  }
  std::string Finish() override { return truncated_ ? std::string() : std::move(data_); }

 private:
  static constexpr size_t kMax = size_t(256) << 20;
  std::string data_;
  bool truncated_ = false;
};

}  // namespace

FileKind Classify(std::string_view path, uint32_t mode) {
  if (path == "var/lib/dpkg/status")
    return FileKind::kDpkgStatus;
  if (path.rfind("var/lib/dpkg/status.d/", 0) == 0 && path.find('/', 22) == std::string_view::npos &&
      !EndsWith(path, ".md5sums"))
    return FileKind::kDpkgStatusD;
  if (path == "lib/apk/db/installed")
    return FileKind::kApkInstalled;
  if (path == "etc/os-release" || path == "usr/lib/os-release")
    return FileKind::kOsRelease;
  if (EndsWith(path, ".dist-info/METADATA") || EndsWith(path, ".egg-info/PKG-INFO") || EndsWith(path, ".egg-info"))
    return FileKind::kPythonMetadata;
  if (EndsWith(path, "/package.json")) {
    // node_modules/NAME/package.json or node_modules/@scope/NAME/package.json
    std::string_view dir = path.substr(0, path.size() - 13);
    size_t slash = dir.rfind('/');
    std::string_view parent = slash == std::string_view::npos ? std::string_view() : dir.substr(0, slash);
    if (!parent.empty() && parent.substr(parent.rfind('/') + 1).rfind('@', 0) == 0) {
      size_t s2 = parent.rfind('/');
      parent = s2 == std::string_view::npos ? std::string_view() : parent.substr(0, s2);
    }
    if (parent == "node_modules" || EndsWith(parent, "/node_modules"))
      return FileKind::kNpmPackage;
    return FileKind::kNone;
  }
  if ((mode & 0111) != 0)
    return FileKind::kExecutable;
  return FileKind::kNone;
}

layer::FileSelector PackageFileSelector() {
  return [](const std::string& path, uint32_t mode, int64_t size) -> std::unique_ptr<layer::FileReader> {
    switch (Classify(path, mode)) {
      case FileKind::kNone:
        return nullptr;
      case FileKind::kExecutable:
        if (size < 4096)
          return nullptr;
        return std::make_unique<GoReader>();
      default:
        return std::make_unique<WholeReader>();
    }
  };
}

namespace {

/// The field names of one stanza database (dpkg's status, apk's installed).
struct StanzaKeys {
  const char* type;
  const char* name;
  const char* version;
  const char* arch;
  const char* license;  // "" when the database has none
  const char* supplier;
};

std::vector<Package> StanzaPackages(std::string_view text, const std::string& file, const StanzaKeys& k,
                                    std::vector<std::string>* warnings) {
  std::vector<Package> out;
  ForEachStanza(text, ':', false, [&](const std::map<std::string, std::string>& f, size_t line) {
    Package p;
    p.type = k.type;
    p.name = Get(f, k.name);
    p.version = Get(f, k.version);
    if (p.name.empty()) {
      if (warnings)
        warnings->push_back(file + ":" + std::to_string(line) + ": a stanza without " + k.name + ": skipped");
      return;
    }
    // dpkg: only packages whose files are there; status.d files
    // (distroless) have no Status field: installed.
    std::string status = Get(f, "Status");
    if (!status.empty() && !DpkgInstalled(status))
      return;
    p.arch = Get(f, k.arch);
    p.license = *k.license ? Get(f, k.license) : "";
    p.supplier = Get(f, k.supplier);
    p.source = file;
    out.push_back(std::move(p));
  });
  return out;
}

}  // namespace

std::vector<Package> ParseDpkgStatus(std::string_view text, const std::string& file,
                                     std::vector<std::string>* warnings) {
  return StanzaPackages(text, file, {"deb", "Package", "Version", "Architecture", "", "Maintainer"}, warnings);
}

std::vector<Package> ParseApkInstalled(std::string_view text, const std::string& file,
                                       std::vector<std::string>* warnings) {
  return StanzaPackages(text, file, {"apk", "P", "V", "A", "L", "m"}, warnings);
}

std::optional<Package> ParsePythonMetadata(std::string_view text, const std::string& file) {
  std::optional<Package> out;
  ForEachStanza(text, ':', true, [&](const std::map<std::string, std::string>& f, size_t) {
    Package p;
    p.type = "pypi";
    p.name = Get(f, "Name");
    p.version = Get(f, "Version");
    if (p.name.empty() || p.version.empty())
      return;
    p.license = Get(f, "License");
    if (p.license.find('\n') != std::string::npos || p.license == "UNKNOWN")
      p.license.clear();  // a whole license text: not an expression
    p.supplier = Get(f, "Author");
    p.source = file;
    out = std::move(p);
  });
  return out;
}

std::optional<Package> ParseNpmPackageJson(std::string_view text, const std::string& file) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("version") ||
      !j["version"].is_string())
    return std::nullopt;
  Package p;
  p.type = "npm";
  p.name = j["name"].get<std::string>();
  p.version = j["version"].get<std::string>();
  if (p.name.empty() || p.version.empty())
    return std::nullopt;
  // "license": "MIT" or {"type": "MIT"}; "author": "A" or {"name": "A"}.
  auto field = [&](const char* key, const char* member) -> std::string {
    if (!j.contains(key))
      return "";
    const auto& v = j[key];
    if (v.is_object() && v.contains(member) && v[member].is_string())
      return v[member].get<std::string>();
    return v.is_string() ? v.get<std::string>() : "";
  };
  p.license = field("license", "type");
  p.supplier = field("author", "name");
  p.source = file;
  return p;
}

std::vector<Package> ParseGoBuildInfo(std::string_view data, const std::string& file) {
  std::vector<Package> out;
  size_t need = GoInfoSize(data);
  if (need == 0 || need == SIZE_MAX || need > data.size())
    return out;
  size_t pos = 32;
  uint64_t n = 0;
  (void)Uvarint(data, &pos, &n);
  std::string_view go_version = data.substr(pos, n);
  pos += n;
  // The Go standard library linked in, as syft names it (pkg:golang/stdlib).
  if (go_version.rfind("go", 0) == 0 && go_version.size() > 2) {
    Package std_lib;
    std_lib.type = "golang";
    std_lib.name = "stdlib";
    std_lib.version = std::string(go_version.substr(2));
    std_lib.source = file;
    out.push_back(std::move(std_lib));
  }
  (void)Uvarint(data, &pos, &n);
  std::string_view mod = data.substr(pos, n);
  // The module info is framed by 16-byte sentinels (runtime/debug).
  if (mod.size() >= 33 && mod[mod.size() - 17] == '\n')
    mod = mod.substr(16, mod.size() - 32);
  bool last_added = false;
  for (std::string_view line : SplitLines(mod)) {
    std::vector<std::string> f = SplitList(line, '\t');
    if (f.size() < 3)
      continue;
    if (f[0] == "=>") {  // the module above is replaced
      if (last_added) {
        out.back().name = std::string(f[1]);
        out.back().version = std::string(f[2]);
      }
      continue;
    }
    last_added = false;
    if (f[0] != "mod" && f[0] != "dep")
      continue;
    if (f[2] == "(devel)" || f[2].empty())
      continue;
    last_added = true;
    Package p;
    p.type = "golang";
    p.name = std::string(f[1]);
    p.version = std::string(f[2]);
    p.source = file;
    out.push_back(std::move(p));
  }
  return out;
}

OsRelease ParseOsRelease(std::string_view text) {
  OsRelease os;
  for (std::string_view line : SplitLines(text)) {
    size_t eq = line.find('=');
    if (eq == std::string_view::npos)
      continue;
    std::string_view key = Trim(line.substr(0, eq));
    std::string value(Trim(line.substr(eq + 1)));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    if (key == "ID")
      os.id = value;
    else if (key == "VERSION_ID")
      os.version_id = value;
  }
  return os;
}

}  // namespace kiln::attest
