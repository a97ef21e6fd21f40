#include "kiln/reference.h"

#include "reference_grammar.h"


namespace kiln {

namespace {

// The grammar of github.com/distribution/reference (regexp.go), matched by
// hand: compiling it with RE2 cost ~3 M instructions (~1 ms) in every kiln
// process that names an image (`kiln run IMG` included). reference_test
// checks each matcher against the RE2 expression it replaces.
bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }
bool IsLowerHex(char c) { return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9'); }
bool IsHex(char c) { return IsLowerHex(c) || (c >= 'A' && c <= 'F'); }

/// (?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]) — one label.
bool MatchLabel(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back()))
    return false;
  for (char c : s)
    if (!IsAlnum(c) && c != '-')
      return false;
  return true;
}

}  // namespace

namespace reference_grammar {

bool Domain(std::string_view s) {
  // label(\.label)* | \[[a-fA-F0-9:]+\]
  if (!s.empty() && s.front() == '[') {
    if (s.size() < 3 || s.back() != ']')
      return false;
    for (char c : s.substr(1, s.size() - 2))
      if (!IsHex(c) && c != ':')
        return false;
    return true;
  }
  for (;;) {
    size_t dot = s.find('.');
    if (!MatchLabel(s.substr(0, dot)))
      return false;
    if (dot == std::string_view::npos)
      return true;
    s.remove_prefix(dot + 1);
  }
}

bool Port(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s)
    if (c < '0' || c > '9')
      return false;
  return true;
}

bool PathComponent(std::string_view s) {
  // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
  size_t i = 0;
  auto run = [&] {
    size_t from = i;
    while (i < s.size() && IsLowerAlnum(s[i]))
      ++i;
    return i > from;
  };
  if (!run())
    return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_')
        ++i;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-')
        ++i;
    } else {
      return false;
    }
    if (!run())
      return false;
  }
  return true;
}

bool Tag(std::string_view s) {
  // [\w][\w.-]{0,127}
  if (s.empty() || s.size() > 128 || !IsWord(s.front()))
    return false;
  for (char c : s)
    if (!IsWord(c) && c != '.' && c != '-')
      return false;
  return true;
}

bool IdPrefix(std::string_view s) {
  // (?:sha256:)?[a-f0-9]{3,64}
  if (s.substr(0, 7) == "sha256:")
    s.remove_prefix(7);
  if (s.size() < 3 || s.size() > 64)
    return false;
  for (char c : s)
    if (!IsLowerHex(c))
      return false;
  return true;
}

}  // namespace reference_grammar

namespace {

constexpr size_t kMaxNameLength = 255;
constexpr std::string_view kDockerDomain = "docker.io";

Error Bad(std::string_view text, const std::string& why) {
  return Error(Errc::kInvalidInput, "invalid reference \"" + std::string(text) + "\": " + why);
}

bool ValidDomain(std::string_view domain) {
  std::string_view host = domain;
  std::string_view port;
  // "[::1]:5000" or "host:5000"
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos)
      return false;
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':')
        return false;
      port = host.substr(close + 2);
      if (port.empty())
        return false;
    }
    host = host.substr(0, close + 1);
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port.empty())
      return false;
  }
  if (!reference_grammar::Domain(host))
    return false;
  return port.empty() || reference_grammar::Port(port);
}

Expected<ImageReference> ParseImpl(std::string_view text, std::string_view default_domain) {
  if (text.empty())
    return Bad(text, "empty reference");
  if (text.size() > 4096)
    return Bad(text.substr(0, 64), "reference too long");
  ImageReference ref;
  std::string_view rest = text;

  if (auto at = rest.find('@'); at != std::string_view::npos) {
    auto d = Digest::Parse(rest.substr(at + 1));
    if (!d)
      return Bad(text, d.error().message());
    ref.digest = *d;
    rest = rest.substr(0, at);
  }
  auto last_slash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!reference_grammar::Tag(tag))
      return Bad(text, "invalid tag \"" + std::string(tag) + "\"");
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty())
    return Bad(text, "missing repository name");

  std::string_view path = rest;
  auto first_slash = rest.find('/');
  if (first_slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, first_slash);
    bool is_domain = first.find_first_of(".:") != std::string_view::npos || first == "localhost";
    for (char c : first)
      if (c >= 'A' && c <= 'Z')
        is_domain = true;
    if (is_domain) {
      if (!ValidDomain(first))
        return Bad(text, "invalid registry \"" + std::string(first) + "\"");
      ref.domain = std::string(first);
      path = rest.substr(first_slash + 1);
    }
  }
  if (ref.domain.empty()) {
    ref.implicit_domain = true;
    ref.domain = std::string(default_domain);
  }
  if (ref.domain == "index.docker.io" || ref.domain == "registry-1.docker.io")
    ref.domain = std::string(kDockerDomain);

  // Validate each path component.
  if (path.empty())
    return Bad(text, "missing repository name");
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string_view comp = path.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                               : slash - start);
    if (!reference_grammar::PathComponent(comp)) {
      for (char c : comp)
        if (c >= 'A' && c <= 'Z')
          return Bad(text, "repository name must be lowercase");
      return Bad(text, comp.empty() ? std::string("empty path component")
                                    : "invalid repository name component \"" + std::string(comp) + "\"");
    }
    if (slash == std::string_view::npos)
      break;
    start = slash + 1;
  }
  ref.path = std::string(path);
  // An image ID is not a name (docker refuses it to avoid confusion).
  if (ref.implicit_domain && ref.path.size() == 64 && ref.path.find(':') == std::string::npos &&
      reference_grammar::IdPrefix(ref.path))
    return Bad(text, "cannot specify 64-byte hexadecimal strings");
  if (ref.domain == kDockerDomain && ref.path.find('/') == std::string::npos)
    ref.path = "library/" + ref.path;
  if (ref.Name().size() > kMaxNameLength)
    return Bad(text, "repository name must not be more than 255 characters");
  if (ref.tag.empty() && !ref.digest.valid())
    ref.tag = "latest";
  return ref;
}

}  // namespace

Expected<ImageReference> ImageReference::Parse(std::string_view text) {
  return ParseImpl(text, kDockerDomain);
}

Expected<ImageReference> ImageReference::ParseWithDefaultDomain(std::string_view text,
                                                                std::string_view default_domain) {
  if (default_domain.empty() || !ValidDomain(default_domain))
    return Bad(text, "invalid default registry \"" + std::string(default_domain) + "\"");
  return ParseImpl(text, default_domain);
}

std::string ImageReference::Name() const { return domain + "/" + path; }

std::string ImageReference::str() const {
  std::string s = Name();
  if (!tag.empty())
    s += ":" + tag;
  if (digest.valid())
    s += "@" + digest.str();
  return s;
}

std::string ImageReference::Familiar() const {
  std::string name;
  if (domain == kDockerDomain) {
    name = path;
    if (name.rfind("library/", 0) == 0 && name.find('/', 8) == std::string::npos)
      name = name.substr(8);
  } else {
    name = Name();
  }
  if (!tag.empty())
    name += ":" + tag;
  if (digest.valid())
    name += "@" + digest.str();
  return name;
}

std::string ImageReference::TagOrDigest() const { return digest.valid() ? digest.str() : tag; }

bool LooksLikeIdPrefix(std::string_view text) { return reference_grammar::IdPrefix(text); }

bool IsValidTag(std::string_view text) { return reference_grammar::Tag(text); }

}  // namespace kiln
