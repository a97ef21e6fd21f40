#include "instructions.h"
#include "quote.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "lexer.h"
#include "text_util.h"

namespace kiln::frontend {
namespace {

Error Invalid(std::string msg) { return Error(Errc::kInvalidInput, std::move(msg)); }

using text::Upper;
using text::IsDigits;

}  // namespace

std::string Flags::Get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end() || it->second.empty())
    return "";
  return it->second.back();
}

std::vector<std::string> Flags::GetList(const std::string& name) const {
  auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>{} : it->second;
}

const std::vector<FlagSpec>& FlagsFor(std::string_view keyword) {
  static const std::vector<FlagSpec> kNone;
  static const std::vector<FlagSpec> kFrom = {{"platform", FlagType::kString}};
  static const std::vector<FlagSpec> kRun = {{"mount", FlagType::kList},
                                             {"network", FlagType::kString},
                                             {"security", FlagType::kString}};
  static const std::vector<FlagSpec> kCopy = {
      {"from", FlagType::kString},   {"chown", FlagType::kString}, {"chmod", FlagType::kString},
      {"link", FlagType::kBool},     {"parents", FlagType::kBool}, {"exclude", FlagType::kList}};
  static const std::vector<FlagSpec> kAdd = {
      {"chown", FlagType::kString},    {"chmod", FlagType::kString},     {"link", FlagType::kBool},
      {"exclude", FlagType::kList},    {"checksum", FlagType::kString},  {"keep-git-dir", FlagType::kBool},
      {"unpack", FlagType::kBool}};
  static const std::vector<FlagSpec> kHealth = {
      {"interval", FlagType::kString},     {"timeout", FlagType::kString},
      {"start-period", FlagType::kString}, {"start-interval", FlagType::kString},
      {"retries", FlagType::kString}};
  if (keyword == "from")
    return kFrom;
  if (keyword == "run")
    return kRun;
  if (keyword == "copy")
    return kCopy;
  if (keyword == "add")
    return kAdd;
  if (keyword == "healthcheck")
    return kHealth;
  return kNone;
}

bool ParseGoBool(std::string_view text, bool* out) {
  if (text == "1" || text == "t" || text == "T" || text == "TRUE" || text == "true" || text == "True") {
    *out = true;
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "FALSE" || text == "false" || text == "False") {
    *out = false;
    return true;
  }
  return false;
}

Expected<Flags> ParseFlags(std::string_view keyword, const std::vector<std::string>& raw) {
  const auto& specs = FlagsFor(keyword);
  const std::string instr = Upper(keyword);
  Flags flags;
  for (const std::string& text : raw) {
    std::string_view f = text;
    if (f.substr(0, 2) == "--")
      f.remove_prefix(2);
    size_t eq = f.find('=');
    std::string name(f.substr(0, eq));
    bool has_value = eq != std::string_view::npos;
    std::string value = has_value ? std::string(f.substr(eq + 1)) : std::string();
    const FlagSpec* spec = nullptr;
    for (const auto& s : specs)
      if (name == s.name)
        spec = &s;
    if (!spec) {
      std::vector<std::string_view> names;
      for (const auto& s : specs)
        names.push_back(s.name);
      std::string near = lex::Suggest(name, names);
      return Invalid("unknown flag --" + name + " for " + instr + (near.empty() ? "" : " (did you mean " + near + "?)"));
    }
    switch (spec->type) {
      case FlagType::kBool: {
        bool b = true;
        if (has_value && !ParseGoBool(value, &b))
          return Invalid("flag --" + name + " for " + instr + ": invalid boolean \"" + value + "\"");
        if (flags.Has(name))
          return Invalid("flag --" + name + " for " + instr + " was given more than once");
        flags.values[name] = {b ? "true" : "false"};
        break;
      }
      case FlagType::kString:
        if (!has_value)
          return Invalid("flag --" + name + " for " + instr + " needs a value");
        if (flags.Has(name))
          return Invalid("flag --" + name + " for " + instr + " was given more than once");
        flags.values[name] = {value};
        break;
      case FlagType::kList:
        if (!has_value)
          return Invalid("flag --" + name + " for " + instr + " needs a value");
        flags.values[name].push_back(value);
        break;
    }
  }
  return flags;
}

Expected<std::vector<MountField>> SplitMountFields(std::string_view text) {
  // encoding/csv: fields separated by ',', a field that starts with '"' is
  // quoted ("" is a literal quote inside it).
  std::vector<std::string> raw;
  size_t i = 0;
  while (true) {
    std::string field;
    if (i < text.size() && text[i] == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        field += text[i++];
      }
      if (!closed)
        return Invalid("--mount=" + std::string(text) + ": unterminated quote");
      // csv also allows text after the closing quote only up to the comma.
      while (i < text.size() && text[i] != ',')
        field += text[i++];
    } else {
      while (i < text.size() && text[i] != ',')
        field += text[i++];
    }
    raw.push_back(std::move(field));
    if (i >= text.size())
      break;
    ++i;  // the comma
  }
  std::vector<MountField> out;
  for (auto& f : raw) {
    MountField m;
    size_t eq = f.find('=');
    m.key = f.substr(0, eq);
    for (char& c : m.key)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (eq != std::string::npos) {
      m.value = f.substr(eq + 1);
      m.has_value = true;
    }
    if (m.key.empty() && !m.has_value)
      continue;  // "a,,b" and a trailing comma
    out.push_back(std::move(m));
  }
  return out;
}

Status ValidateChmod(std::string_view chmod) {
  if (chmod.empty())
    return Invalid("--chmod: empty mode");
  if (IsDigits(chmod)) {
    unsigned long v = 0;
    for (char c : chmod) {
      if (c > '7' || v > 07777)
        return Invalid("--chmod=" + std::string(chmod) + ": invalid mode (octal like 755 or symbolic like u+x,go-w)");
      v = v * 8 + static_cast<unsigned long>(c - '0');
    }
    if (v > 07777)
      return Invalid("--chmod=" + std::string(chmod) + ": mode out of range (max 7777)");
    return Ok();
  }
  // Symbolic, as chmod(1) and BuildKit's fileutils: clause(,clause)*,
  // clause = [ugoa]*([-+=]([rwxXst]*|[ugo]))+
  size_t i = 0;
  auto bad = [&] { return Invalid("--chmod=" + std::string(chmod) + ": invalid mode (octal like 755 or symbolic like u+x,go-w)"); };
  while (true) {
    while (i < chmod.size() && std::string_view("ugoa").find(chmod[i]) != std::string_view::npos)
      ++i;
    int ops = 0;
    while (i < chmod.size() && std::string_view("-+=").find(chmod[i]) != std::string_view::npos) {
      ++i;
      ++ops;
      if (i < chmod.size() && std::string_view("ugo").find(chmod[i]) != std::string_view::npos) {
        ++i;
        continue;
      }
      while (i < chmod.size() && std::string_view("rwxXst").find(chmod[i]) != std::string_view::npos)
        ++i;
    }
    if (ops == 0)
      return bad();
    if (i == chmod.size())
      return Ok();
    if (chmod[i] != ',')
      return bad();
    ++i;
    if (i == chmod.size())
      return bad();
  }
}

Expected<int64_t> ParseByteSize(std::string_view text) {
  std::string_view s = text;
  size_t n = 0;
  while (n < s.size() && ((s[n] >= '0' && s[n] <= '9') || s[n] == '.'))
    ++n;
  if (n == 0)
    return Invalid("invalid size \"" + std::string(text) + "\"");
  long double v = std::stold(std::string(s.substr(0, n)));
  std::string unit;
  for (char c : s.substr(n))
    if (c != ' ')
      unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  long double mult = 1;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    mult = 1024.0L;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    mult = 1024.0L * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    mult = 1024.0L * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib")
    mult = 1024.0L * 1024 * 1024 * 1024;
  else
    return Invalid("invalid size \"" + std::string(text) + "\"");
  return static_cast<int64_t>(v * mult);
}

Expected<std::vector<std::string>> ParseExposePort(std::string_view spec) {
  std::string_view port = spec;
  std::string proto = "tcp";
  if (size_t slash = spec.find('/'); slash != std::string_view::npos) {
    port = spec.substr(0, slash);
    proto.clear();
    for (char c : spec.substr(slash + 1))
      proto += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (proto != "tcp" && proto != "udp" && proto != "sctp")
      return Invalid("EXPOSE " + std::string(spec) + ": invalid protocol \"" + proto + "\"");
  }
  // Docker accepts [ip:][hostPort:]containerPort here but uses only the last
  // part; the ip must be an IP address (nat.ParsePortSpec), not a host name.
  if (size_t colon = port.rfind(':'); colon != std::string_view::npos) {
    std::string_view head = port.substr(0, colon);
    port = port.substr(colon + 1);
    std::string_view ip;
    if (size_t c2 = head.rfind(':'); c2 != std::string_view::npos) {
      ip = head.substr(0, c2);
      if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']')
        ip = ip.substr(1, ip.size() - 2);
    }
    if (!ip.empty()) {
      std::string ip_text(ip);
      unsigned char buf[sizeof(struct in6_addr)];
      if (::inet_pton(AF_INET, ip_text.c_str(), buf) != 1 && ::inet_pton(AF_INET6, ip_text.c_str(), buf) != 1)
        return Invalid("EXPOSE " + std::string(spec) + ": invalid IP address \"" + ip_text + "\"");
    }
  }
  std::string_view lo = port, hi = port;
  if (size_t dash = port.find('-'); dash != std::string_view::npos) {
    lo = port.substr(0, dash);
    hi = port.substr(dash + 1);
  }
  auto bad = [&] { return Invalid("EXPOSE " + std::string(spec) + ": invalid port"); };
  if (!IsDigits(lo) || !IsDigits(hi) || lo.size() > 5 || hi.size() > 5)
    return bad();
  int a = std::stoi(std::string(lo)), b = std::stoi(std::string(hi));
  if (a > 65535 || b > 65535 || b < a)
    return bad();
  std::vector<std::string> out;
  for (int p = a; p <= b; ++p)
    out.push_back(std::to_string(p) + "/" + proto);
  return out;
}

Status ValidateSignal(std::string_view signal) {
  if (IsDigits(signal)) {
    if (signal.size() > 2 || std::stoi(std::string(signal)) < 1 || std::stoi(std::string(signal)) > 64)
      return Invalid("invalid signal: " + std::string(signal));
    return Ok();
  }
  std::string name = Upper(signal);
  if (name.rfind("SIG", 0) == 0)
    name = name.substr(3);
  static const char* const kNames[] = {
      "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
      "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
      "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX"};
  for (const char* n : kNames)
    if (name == n)
      return Ok();
  for (std::string_view base : {"RTMIN+", "RTMAX-"}) {
    if (name.rfind(base, 0) == 0) {
      std::string_view num = std::string_view(name).substr(base.size());
      if (IsDigits(num) && num.size() <= 2 && std::stoi(std::string(num)) >= 1 &&
          std::stoi(std::string(num)) <= 15)
        return Ok();
    }
  }
  return Invalid("invalid signal: " + std::string(signal));
}

std::string ChompHeredoc(std::string_view content) {
  std::string out;
  out.reserve(content.size());
  bool line_start = true;
  for (char c : content) {
    if (line_start && c == '\t')
      continue;
    line_start = c == '\n';
    out += c;
  }
  return out;
}

std::string HeredocMarkerName(std::string_view word) {
  size_t i = 0;
  while (i < word.size() && word[i] >= '0' && word[i] <= '9')
    ++i;
  if (word.substr(i, 2) != "<<")
    return "";
  i += 2;
  if (i < word.size() && word[i] == '-')
    ++i;
  std::string name;
  for (; i < word.size(); ++i)
    if (word[i] != '"' && word[i] != '\'')
      name += word[i];
  return name;
}

std::string GoQuoteList(const std::vector<std::string>& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.size(); ++i) {
    if (i)
      out += ' ';
    out += GoQuote(list[i]);
  }
  return out + "]";
}

}  // namespace kiln::frontend
