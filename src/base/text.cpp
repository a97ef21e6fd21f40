#include "kiln/text.h"

#include <time.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <limits>
#include <utility>

namespace kiln {

namespace {

Error Invalid(std::string msg) { return Error(Errc::kInvalidInput, std::move(msg)); }

}  // namespace

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos)
      nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

Expected<int64_t> ParseGoDuration(std::string_view text) {
  auto bad = [&] { return Invalid("invalid duration \"" + std::string(text) + "\""); };
  std::string_view s = text;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0")
    return int64_t{0};
  if (s.empty())
    return bad();
  long double total = 0;
  while (!s.empty()) {
    size_t n = 0;
    long double value = 0;
    bool digits = false;
    while (n < s.size() && s[n] >= '0' && s[n] <= '9') {
      value = value * 10 + (s[n] - '0');
      ++n;
      digits = true;
    }
    if (n < s.size() && s[n] == '.') {
      ++n;
      long double scale = 0.1L;
      while (n < s.size() && s[n] >= '0' && s[n] <= '9') {
        value += (s[n] - '0') * scale;
        scale /= 10;
        ++n;
        digits = true;
      }
    }
    if (!digits)
      return bad();
    s.remove_prefix(n);
    size_t u = 0;
    while (u < s.size() && !(s[u] >= '0' && s[u] <= '9') && s[u] != '.')
      ++u;
    std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    long double mult;
    if (unit == "ns")
      mult = 1;
    else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs")
      mult = 1e3L;
    else if (unit == "ms")
      mult = 1e6L;
    else if (unit == "s")
      mult = 1e9L;
    else if (unit == "m")
      mult = 60e9L;
    else if (unit == "h")
      mult = 3600e9L;
    else
      return unit.empty() ? Invalid("missing unit in duration \"" + std::string(text) + "\"") : bad();
    total += value * mult;
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max()))
      return bad();
  }
  auto ns = static_cast<int64_t>(std::llround(total));
  return neg ? -ns : ns;
}

void AppendUtf8(std::string& out, char32_t cp) {
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string FormatTimeNanos(int64_t unix_ns, const char* format, bool local) {
  time_t secs = static_cast<time_t>(unix_ns / 1000000000);
  long nanos = static_cast<long>(unix_ns % 1000000000);
  struct tm tm {};
  if (local)
    ::localtime_r(&secs, &tm);
  else
    ::gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  std::string out = buf;
  if (nanos > 0) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09ld", nanos);
    std::string f = frac;
    while (f.back() == '0')
      f.pop_back();
    out += f;
  }
  return out;
}

namespace {

// (escape letter, character) of C and Go.
constexpr std::pair<char, char> kEscapes[] = {{'n', '\n'}, {'t', '\t'}, {'r', '\r'}, {'a', '\a'},
                                              {'b', '\b'}, {'f', '\f'}, {'v', '\v'}};

}  // namespace

char UnescapeChar(char e) {
  if (e == '\\' || e == '"' || e == '\'')
    return e;
  for (auto [letter, c] : kEscapes)
    if (e == letter)
      return c;
  return '\0';
}

const char* EscapeControl(char32_t c) {
  static const char* const kNames[] = {"\\n", "\\t", "\\r", "\\a", "\\b", "\\f", "\\v"};
  for (size_t i = 0; i < std::size(kEscapes); ++i)
    if (c == static_cast<char32_t>(kEscapes[i].second))
      return kNames[i];
  return nullptr;
}

std::string QuoteWith(std::string_view s, char quote) {
  std::string out(1, quote);
  for (char c : s) {
    if (c == quote || c == '\\')
      out += '\\';
    out += c;
  }
  return out + quote;
}

std::string ShellQuote(std::string_view word) {
  if (!word.empty() &&
      word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,@%+") ==
          std::string_view::npos)
    return std::string(word);
  std::string out = "'";
  for (char c : word)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace kiln
