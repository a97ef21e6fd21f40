#include "kiln/deployment.h"

#include <cctype>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "kiln/text.h"

namespace kiln::deployment {

namespace {

constexpr int64_t kNs = 1;
constexpr int64_t kUs = 1000 * kNs;
constexpr int64_t kMs = 1000 * kUs;
constexpr int64_t kS = 1000 * kMs;
constexpr int64_t kMin = 60 * kS;
constexpr int64_t kHour = 60 * kMin;

// Go's fmtFrac/fmtInt: v / 10^prec with the trailing zeros of the fraction dropped.
std::string Fraction(uint64_t v, int prec) {
  std::string frac;
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    int digit = static_cast<int>(v % 10);
    print = print || digit != 0;
    if (print)
      frac.insert(frac.begin(), static_cast<char>('0' + digit));
    v /= 10;
  }
  std::string out = std::to_string(v);
  if (print)
    out += "." + frac;
  return out;
}

}  // namespace

std::string FormatDuration(int64_t ns) {
  if (ns == 0)
    return "0s";
  bool neg = ns < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  std::string out;
  if (u < static_cast<uint64_t>(kS)) {
    // Below a second: ns, µs or ms with a fraction.
    if (u < static_cast<uint64_t>(kUs))
      out = std::to_string(u) + "ns";
    else if (u < static_cast<uint64_t>(kMs))
      out = Fraction(u, 3) + "\xc2\xb5s";
    else
      out = Fraction(u, 6) + "ms";
  } else {
    std::string secs = Fraction(u % static_cast<uint64_t>(kMin), 9) + "s";
    uint64_t mins = u / static_cast<uint64_t>(kMin);
    if (mins == 0) {
      out = secs;
    } else {
      uint64_t hours = mins / 60;
      mins %= 60;
      out = std::to_string(mins) + "m" + secs;
      if (hours > 0)
        out = std::to_string(hours) + "h" + out;
    }
  }
  return neg ? "-" + out : out;
}

std::optional<int64_t> ParseDuration(const std::string& text) {
  auto ns = ParseGoDuration(text);
  if (!ns)
    return std::nullopt;
  return *ns;
}

}  // namespace kiln::deployment
