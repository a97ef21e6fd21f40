#include "kiln/reference.h"

#include <re2/re2.h>

namespace kiln {

namespace {

// The grammar of github.com/distribution/reference (regexp.go), compiled once.
struct Grammar {
  RE2 domain{
      "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
      "(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
      "|\\[[a-fA-F0-9:]+\\]"};
  RE2 port{"[0-9]+"};
  RE2 path_component{"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"};
  RE2 tag{"[\\w][\\w.-]{0,127}"};
  RE2 id_prefix{"(?:sha256:)?[a-f0-9]{3,64}"};
};
const Grammar& G() {
  static const Grammar g;
  return g;
}

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
  if (!RE2::FullMatch(host, G().domain))
    return false;
  return port.empty() || RE2::FullMatch(port, G().port);
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
    if (!RE2::FullMatch(tag, G().tag))
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
    if (!RE2::FullMatch(comp, G().path_component)) {
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
  if (ref.implicit_domain && ref.path.size() == 64 && RE2::FullMatch(ref.path, "[a-f0-9]{64}"))
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

bool LooksLikeIdPrefix(std::string_view text) { return RE2::FullMatch(text, G().id_prefix); }

bool IsValidTag(std::string_view text) { return RE2::FullMatch(text, G().tag); }

}  // namespace kiln
