// .containerignore / .dockerignore with moby/patternmatcher semantics.
//
// Each pattern is validated with Go filepath.Match's syntax rules, then
// classified the way patternmatcher does it (exact, prefix "dir/**", suffix
// "**/name", or a regular expression) and compiled to one RE2 object.
#include "kiln/containerfile.h"

#include <re2/re2.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <optional>

#include "kiln/text.h"
#include "text_util.h"

namespace kiln::frontend {
namespace {

using text::CleanPath;

std::string_view TrimSpace(std::string_view s) {
  // Go's strings.TrimSpace for the ASCII whitespace found in ignore files.
  const char* ws = " \t\n\v\f\r";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos)
    return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

/// Decodes one UTF-8 character; an invalid byte counts as one character.
size_t RuneLen(std::string_view s, size_t pos) {
  auto b = static_cast<unsigned char>(s[pos]);
  size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
  if (pos + len > s.size())
    return 1;
  for (size_t i = 1; i < len; ++i)
    if ((static_cast<unsigned char>(s[pos + i]) & 0xC0) != 0x80)
      return 1;
  return len;
}

int32_t DecodeRune(std::string_view r) {
  auto b0 = static_cast<unsigned char>(r[0]);
  if (r.size() == 1)
    return b0 < 0x80 ? b0 : 0xFFFD;
  int32_t cp = r.size() == 2 ? (b0 & 0x1F) : r.size() == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t i = 1; i < r.size(); ++i)
    cp = (cp << 6) | (static_cast<unsigned char>(r[i]) & 0x3F);
  return cp;
}

/// A literal character for RE2.
std::string Literal(std::string_view r) {
  if (r.size() == 1) {
    auto c = static_cast<unsigned char>(r[0]);
    if (c >= 0x80)
      return std::string(r);  // invalid UTF-8: RE2 rejects it, as Go's regexp does
    if (!std::isalnum(c) && c != '_')
      return std::string("\\") + r[0];
  }
  return std::string(r);
}

std::string ClassRune(int32_t cp) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "\\x{%x}", static_cast<unsigned>(cp));
  return buf;
}

enum class MatchType { kExact, kPrefix, kSuffix, kRegexp };

/// Translates a glob (Go filepath.Match syntax plus "**") to an RE2 body.
/// Validates like filepath.Match. With `segment`, "**" is not special (used
/// for per-directory checks).
class GlobTranslator {
 public:
  explicit GlobTranslator(std::string_view pattern) : p_(pattern) {}

  /// Returns false with `error_` set for a malformed pattern.
  bool Translate() {
    type_ = MatchType::kExact;
    regex_ = "^";
    for (size_t i = 0; pos_ < p_.size(); ++i) {
      std::string_view ch = NextRune();
      if (ch == "*") {
        if (PeekIs('*')) {
          ++pos_;
          if (PeekIs('/'))
            ++pos_;  // "**/" is treated as "**"
          if (pos_ >= p_.size()) {
            if (type_ == MatchType::kExact) {
              type_ = MatchType::kPrefix;
            } else {
              regex_ += ".*";
              type_ = MatchType::kRegexp;
            }
          } else {
            regex_ += "(.*/)?";  // any number of segments, even none
            type_ = MatchType::kRegexp;
          }
          if (i == 0)
            type_ = MatchType::kSuffix;
        } else {
          regex_ += "[^/]*";
          type_ = MatchType::kRegexp;
        }
      } else if (ch == "?") {
        regex_ += "[^/]";
        type_ = MatchType::kRegexp;
      } else if (ch == "\\") {
        if (pos_ >= p_.size())
          return Fail();
        regex_ += Literal(NextRune());
        type_ = MatchType::kRegexp;
      } else if (ch == "[") {
        if (!Class())
          return Fail();
        type_ = MatchType::kRegexp;
      } else {
        regex_ += Literal(ch);
      }
    }
    regex_ += "$";
    return true;
  }

  MatchType type() const { return type_; }
  const std::string& regex() const { return regex_; }

 private:
  std::string_view NextRune() {
    size_t len = RuneLen(p_, pos_);
    std::string_view r = p_.substr(pos_, len);
    pos_ += len;
    return r;
  }
  bool PeekIs(char c) const { return pos_ < p_.size() && p_[pos_] == c; }
  bool Fail() { return false; }

  /// One class member character (Go's getEsc): not '-' or ']' unescaped,
  /// and something must follow it.
  std::optional<int32_t> ClassChar() {
    if (pos_ >= p_.size() || p_[pos_] == '-' || p_[pos_] == ']')
      return std::nullopt;
    if (p_[pos_] == '\\') {
      ++pos_;
      if (pos_ >= p_.size())
        return std::nullopt;
    }
    size_t len = RuneLen(p_, pos_);
    int32_t cp = DecodeRune(p_.substr(pos_, len));
    if (cp == 0xFFFD && len == 1)
      return std::nullopt;
    pos_ += len;
    if (pos_ >= p_.size())
      return std::nullopt;
    return cp;
  }

  /// After '[': "[^a-c]" and friends, with Go filepath.Match's rules.
  bool Class() {
    bool negated = PeekIs('^');
    if (negated)
      ++pos_;
    std::string body;
    int ranges = 0;
    for (;;) {
      if (PeekIs(']') && ranges > 0) {
        ++pos_;
        break;
      }
      std::optional<int32_t> lo = ClassChar();
      if (!lo)
        return false;
      int32_t hi = *lo;
      if (PeekIs('-')) {
        ++pos_;
        std::optional<int32_t> h = ClassChar();
        if (!h)
          return false;
        hi = *h;
      }
      ++ranges;
      if (*lo > hi)
        continue;  // an empty range matches nothing, as in Go
      body += ClassRune(*lo);
      if (hi != *lo)
        body += "-" + ClassRune(hi);
    }
    if (body.empty())
      regex_ += negated ? "[\\x{0}-\\x{10ffff}]" : "[^\\x{0}-\\x{10ffff}]";
    else
      regex_ += (negated ? "[^" : "[") + body + "]";
    return true;
  }

  std::string_view p_;
  size_t pos_ = 0;
  MatchType type_ = MatchType::kExact;
  std::string regex_;
};

std::unique_ptr<RE2> Compile(const std::string& regex) {
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<RE2>(regex, options);
  if (!re->ok())
    return nullptr;
  return re;
}

struct Pattern {
  std::string text;  // cleaned, without '!'
  bool exclusion = false;
  MatchType type = MatchType::kExact;
  std::unique_ptr<RE2> re;  // kRegexp only
  /// Per '/'-segment matchers for HasExceptionsUnder; null for a segment
  /// containing "**" (it can match any depth).
  std::vector<std::unique_ptr<RE2>> segments;

  bool Match(std::string_view path) const {
    switch (type) {
      case MatchType::kExact:
        return path == text;
      case MatchType::kPrefix:
        return path.substr(0, text.size() - 2) == std::string_view(text).substr(0, text.size() - 2);
      case MatchType::kSuffix: {
        std::string_view suffix = std::string_view(text).substr(2);
        if (path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix)
          return true;
        return !suffix.empty() && suffix[0] == '/' && path == suffix.substr(1);
      }
      case MatchType::kRegexp:
        return RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *re);
    }
    return false;
  }
};

std::vector<std::string_view> SplitSlash(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  for (;;) {
    size_t slash = s.find('/', pos);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, slash - pos));
    pos = slash + 1;
  }
}

/// A context-relative path as patternmatcher compares it.
std::string NormalizePath(std::string_view path) {
  std::string p = CleanPath(path);
  if (p.size() > 1 && p[0] == '/')
    p.erase(0, 1);
  return p;
}

}  // namespace

std::vector<std::string> ReadIgnoreFile(std::string_view text) {
  std::vector<std::string> patterns;
  bool first = true;
  for (std::string_view line : SplitLines(text)) {
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (first && line.substr(0, 3) == "\xEF\xBB\xBF")
      line.remove_prefix(3);
    first = false;
    if (!line.empty() && line[0] == '#')
      continue;
    line = TrimSpace(line);
    if (line.empty())
      continue;
    bool invert = line[0] == '!';
    if (invert)
      line = TrimSpace(line.substr(1));
    std::string pattern;
    if (!line.empty()) {
      pattern = CleanPath(line);
      if (pattern.size() > 1 && pattern[0] == '/')
        pattern.erase(0, 1);
    }
    patterns.push_back(invert ? "!" + pattern : pattern);
  }
  return patterns;
}

struct IgnoreMatcher::Impl {
  std::vector<Pattern> patterns;
};

IgnoreMatcher::IgnoreMatcher() : impl_(std::make_unique<Impl>()) {}
IgnoreMatcher::~IgnoreMatcher() = default;

Expected<std::shared_ptr<const IgnoreMatcher>> IgnoreMatcher::Create(
    const std::vector<std::string>& patterns) {
  std::shared_ptr<IgnoreMatcher> m(new IgnoreMatcher());
  for (const std::string& raw : patterns) {
    std::string_view trimmed = TrimSpace(raw);
    if (trimmed.empty())
      continue;
    std::string p = CleanPath(trimmed);
    Pattern pat;
    if (p[0] == '!') {
      if (p.size() == 1)
        return Error(Errc::kInvalidInput, "illegal exclusion pattern: \"!\"");
      pat.exclusion = true;
      p.erase(0, 1);
    }
    auto bad = [&raw](std::string_view why) {
      return Error(Errc::kInvalidInput,
                   "invalid ignore pattern \"" + raw + "\": " + std::string(why));
    };
    GlobTranslator glob(p);
    if (!glob.Translate())
      return bad("syntax error in pattern");
    pat.type = glob.type();
    if (pat.type == MatchType::kRegexp) {
      pat.re = Compile(glob.regex());
      if (!pat.re)
        return bad("cannot compile it");
    }
    if (pat.exclusion) {
      for (std::string_view seg : SplitSlash(p)) {
        if (seg.find("**") != std::string_view::npos) {
          pat.segments.push_back(nullptr);
          continue;
        }
        GlobTranslator seg_glob(seg);
        std::unique_ptr<RE2> re = seg_glob.Translate() ? Compile(seg_glob.regex()) : nullptr;
        if (!re)  // e.g. an escape split by '/': be conservative
          re = Compile(".*");
        pat.segments.push_back(std::move(re));
      }
    }
    pat.text = std::move(p);
    m->impl_->patterns.push_back(std::move(pat));
  }
  return std::shared_ptr<const IgnoreMatcher>(std::move(m));
}

bool IgnoreMatcher::Matches(std::string_view path) const {
  std::string file = NormalizePath(path);
  if (file == ".")
    return false;
  bool matched = false;
  for (const Pattern& pat : impl_->patterns) {
    // Last match wins: an inclusion only matters while unmatched, an
    // exception only while matched.
    if (pat.exclusion != matched)
      continue;
    bool match = pat.Match(file);
    // Or any parent directory.
    for (size_t slash = file.find('/', 1); !match && slash != std::string::npos;
         slash = file.find('/', slash + 1))
      match = pat.Match(std::string_view(file).substr(0, slash));
    if (match)
      matched = !pat.exclusion;
  }
  return matched;
}

bool IgnoreMatcher::HasExceptionsUnder(std::string_view dir) const {
  std::string d = NormalizePath(dir);
  std::vector<std::string_view> parts;
  if (d != "." && d != "/")
    parts = SplitSlash(d);
  for (const Pattern& pat : impl_->patterns) {
    if (!pat.exclusion)
      continue;
    bool possible = true;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i >= pat.segments.size())
        break;  // the exception names `dir` or one of its parents
      if (!pat.segments[i])
        break;  // "**" can reach any depth
      if (!RE2::FullMatch(re2::StringPiece(parts[i].data(), parts[i].size()), *pat.segments[i])) {
        possible = false;
        break;
      }
    }
    if (possible)
      return true;
  }
  return false;
}

bool IgnoreMatcher::empty() const { return impl_->patterns.empty(); }

}  // namespace kiln::frontend
