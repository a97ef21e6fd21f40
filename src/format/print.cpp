// Go's value printing (fmt %v) and fmt.Sprintf for the template engine.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "format/internal.h"
#include "kiln/text.h"

namespace kiln::format::internal {

namespace {

// Digits and decimal exponent of the shortest representation that reads
// back as `f` (f > 0, finite): f = 0.d1d2d3... * 10^dp.
void ShortestDigits(double f, std::string& digits, int& dp) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
    if (std::strtod(buf, nullptr) == f || prec == 17)
      break;
  }
  // buf: "d.ddde[+-]XX"
  std::string s(buf);
  size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  int exp = std::atoi(s.c_str() + e + 1);
  digits.clear();
  for (char c : mant)
    if (c >= '0' && c <= '9')
      digits += c;
  while (digits.size() > 1 && digits.back() == '0')
    digits.pop_back();
  dp = exp + 1;
}

bool IsInteger(const Json& j) { return j.is_number_integer(); }

long long AsInt(const Json& j) {
  if (j.is_number_unsigned())
    return static_cast<long long>(j.get<unsigned long long>());
  return j.get<long long>();
}

std::string Pad(std::string s, int width, bool minus, bool zero) {
  // width counts runes, as Go does
  int n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80)
      ++n;
  if (width <= n)
    return s;
  size_t fill = static_cast<size_t>(width - n);
  if (minus)
    return s + std::string(fill, ' ');
  if (zero) {
    size_t sign = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    return s.substr(0, sign) + std::string(fill, '0') + s.substr(sign);
  }
  return std::string(fill, ' ') + s;
}

std::string BadVerb(char verb, const Value& v) {
  if (v.missing())
    return std::string("%!") + verb + "(<nil>)";
  return std::string("%!") + verb + "(" + GoTypeName(v) + "=" + GoPrint(v) + ")";
}

std::string IntBase(unsigned long long u, int base, bool upper) {
  if (u == 0)
    return "0";
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string s;
  while (u) {
    s.insert(s.begin(), digits[u % static_cast<unsigned>(base)]);
    u /= static_cast<unsigned>(base);
  }
  return s;
}

// %c of a number: its UTF-8 bytes (U+FFFD when it is no code point).
void AppendCodePoint(std::string& out, unsigned long cp) {
  AppendUtf8(out, cp > 0x10FFFF ? char32_t{0xFFFD} : static_cast<char32_t>(cp));
}

}  // namespace

std::string GoFloat(double f) {
  if (std::isnan(f))
    return "NaN";
  if (std::isinf(f))
    return f > 0 ? "+Inf" : "-Inf";
  if (f == 0)
    return std::signbit(f) ? "-0" : "0";
  std::string sign = f < 0 ? "-" : "";
  std::string d;
  int dp = 0;
  ShortestDigits(std::fabs(f), d, dp);
  int exp = dp - 1;
  if (exp < -4 || exp >= 6) {  // %v: shortest digits, %e from 1e+06
    std::string m = d.substr(0, 1);
    if (d.size() > 1)
      m += "." + d.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return sign + m + e;
  }
  std::string s;
  if (dp <= 0) {
    s = "0." + std::string(static_cast<size_t>(-dp), '0') + d;
  } else if (static_cast<size_t>(dp) >= d.size()) {
    s = d + std::string(static_cast<size_t>(dp) - d.size(), '0');
  } else {
    s = d.substr(0, static_cast<size_t>(dp)) + "." + d.substr(static_cast<size_t>(dp));
  }
  return sign + s;
}

std::string GoTypeName(const Value& v) {
  if (v.missing())
    return "<nil>";
  const Json& j = v.j();
  switch (j.type()) {
    case Json::value_t::string:
      return "string";
    case Json::value_t::boolean:
      return "bool";
    case Json::value_t::number_integer:
      return "int";
    case Json::value_t::number_unsigned:
      return "int";  // JSON has no unsigned: podman's fields are int64
    case Json::value_t::number_float:
      return "float64";
    case Json::value_t::null:
      return "interface {}";
    case Json::value_t::array: {
      bool strings = !j.empty();
      for (const auto& e : j)
        strings = strings && e.is_string();
      return strings ? "[]string" : "[]interface {}";
    }
    case Json::value_t::object:
      if (v.is_map || v.type.empty())
        return "map[string]interface {}";
      return v.type;
    default:
      return "interface {}";
  }
}

std::string GoPrintJson(const Json& j) {
  switch (j.type()) {
    case Json::value_t::string:
      return j.get_ref<const std::string&>();
    case Json::value_t::boolean:
      return j.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer:
      return std::to_string(j.get<long long>());
    case Json::value_t::number_unsigned:
      return std::to_string(j.get<unsigned long long>());
    case Json::value_t::number_float:
      return GoFloat(j.get<double>());
    case Json::value_t::null:
      return "<nil>";
    case Json::value_t::array: {
      std::string s = "[";
      bool first = true;
      for (const auto& e : j) {
        if (!first)
          s += ' ';
        first = false;
        s += GoPrintJson(e);
      }
      return s + "]";
    }
    case Json::value_t::object: {
      std::string s = "map[";
      bool first = true;
      for (const auto& [k, e] : j.items()) {
        if (!first)
          s += ' ';
        first = false;
        s += k + ":" + GoPrintJson(e);
      }
      return s + "]";
    }
    default:
      return "<nil>";
  }
}

std::string GoPrint(const Value& v) { return v.missing() ? "<no value>" : GoPrintJson(v.j()); }

std::string GoQuote(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      continue;
    }
    if (const char* e = EscapeControl(c)) {
      out += e;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      // Copy a well-formed UTF-8 sequence; escape a stray byte.
      size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
      bool ok = len != 0 && i + len <= s.size();
      for (size_t k = 1; ok && k < len; ++k)
        ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
      if (ok) {
        out.append(s.substr(i, len));
        i += len - 1;
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
      }
    }
  }
  return out + "\"";
}

std::string GoSprintf(std::string_view f, const std::vector<Value>& args) {
  std::string out;
  size_t argi = 0;
  size_t i = 0;
  while (i < f.size()) {
    char c = f[i];
    if (c != '%') {
      out += c;
      ++i;
      continue;
    }
    ++i;
    bool minus = false, plus = false, zero = false, space = false, sharp = false;
    for (; i < f.size(); ++i) {
      if (f[i] == '-') minus = true;
      else if (f[i] == '+') plus = true;
      else if (f[i] == '0') zero = true;
      else if (f[i] == ' ') space = true;
      else if (f[i] == '#') sharp = true;
      else break;
    }
    int width = -1, prec = -1;
    bool bad_width = false, bad_prec = false;
    // The digits at f[i] (none: 0) into `n`, capped at 1000000 (`bad` then).
    auto number = [&](int& n, bool& bad) {
      n = 0;
      for (; i < f.size() && f[i] >= '0' && f[i] <= '9'; ++i) {
        n = n * 10 + (f[i] - '0');
        if (n > 1000000) {
          bad = true;
          n = 1000000;
        }
      }
    };
    if (i < f.size() && f[i] >= '0' && f[i] <= '9')
      number(width, bad_width);
    if (i < f.size() && f[i] == '.') {
      ++i;
      number(prec, bad_prec);
    }
    if (i >= f.size()) {
      out += "%!(NOVERB)";
      break;
    }
    char verb = f[i++];
    if (bad_width) {
      out += "%!(BADWIDTH)";
      width = -1;
    }
    if (bad_prec) {
      out += "%!(BADPREC)";
      prec = -1;
    }
    if (verb == '%') {
      out += '%';
      continue;
    }
    if (argi >= args.size()) {
      out += std::string("%!") + verb + "(MISSING)";
      continue;
    }
    const Value& v = args[argi++];
    std::string s;
    bool numeric = false;
    if (v.missing()) {
      s = verb == 'v' ? "<nil>" : BadVerb(verb, v);
      out += Pad(s, width, minus, false);
      continue;
    }
    const Json& j = v.j();
    switch (verb) {
      case 'v':
        if (j.is_number_float()) {
          s = GoFloat(j.get<double>());
          numeric = true;
        } else {
          s = GoPrint(v);
          numeric = j.is_number();
        }
        if (plus && j.is_number() && s[0] != '-')
          s = "+" + s;
        break;
      case 's':
        if (j.is_string() || j.is_array() || j.is_object())
          s = GoPrint(v);
        else
          s = BadVerb(verb, v);
        if (prec >= 0 && j.is_string()) {
          // precision truncates to that many runes
          size_t runes = 0, k = 0;
          for (; k < s.size(); ++k)
            if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80 && runes++ == static_cast<size_t>(prec))
              break;
          s = s.substr(0, k);
        }
        break;
      case 'q':
        if (j.is_string())
          s = GoQuote(j.get_ref<const std::string&>());
        else if (IsInteger(j)) {
          std::string r;
          AppendCodePoint(r, static_cast<unsigned long>(AsInt(j)));
          s = "'" + r + "'";
        } else
          s = BadVerb(verb, v);
        break;
      case 'd':
      case 'x':
      case 'X':
      case 'o':
      case 'b':
        if (IsInteger(j)) {
          numeric = true;
          long long n = AsInt(j);
          bool neg = j.is_number_integer() && !j.is_number_unsigned() && n < 0;
          unsigned long long u = j.is_number_unsigned() ? j.get<unsigned long long>()
                                                        : (neg ? 0ULL - static_cast<unsigned long long>(n)
                                                               : static_cast<unsigned long long>(n));
          int base = verb == 'd' ? 10 : verb == 'o' ? 8 : verb == 'b' ? 2 : 16;
          s = IntBase(u, base, verb == 'X');
          if (prec >= 0 && s.size() < static_cast<size_t>(prec))
            s = std::string(static_cast<size_t>(prec) - s.size(), '0') + s;
          if (sharp && base == 16)
            s = (verb == 'X' ? "0X" : "0x") + s;
          if (sharp && base == 8 && s[0] != '0')
            s = "0" + s;
          if (neg)
            s = "-" + s;
          else if (plus)
            s = "+" + s;
          else if (space)
            s = " " + s;
        } else if ((verb == 'x' || verb == 'X') && j.is_string()) {
          const std::string& str = j.get_ref<const std::string&>();
          for (unsigned char ch : str)
            s += IntBase(ch >> 4, 16, verb == 'X') + IntBase(ch & 15, 16, verb == 'X');
        } else {
          s = BadVerb(verb, v);
        }
        break;
      case 'c':
        if (IsInteger(j))
          AppendCodePoint(s, static_cast<unsigned long>(AsInt(j)));
        else
          s = BadVerb(verb, v);
        break;
      case 't':
        s = j.is_boolean() ? (j.get<bool>() ? "true" : "false") : BadVerb(verb, v);
        break;
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
        if (j.is_number_float()) {
          numeric = true;
          double d = j.get<double>();
          if ((verb == 'g' || verb == 'G') && prec < 0) {
            s = GoFloat(d);
          } else {
            char fmt[16];
            std::snprintf(fmt, sizeof fmt, "%%%s.*%c", plus ? "+" : space ? " " : "", verb == 'F' ? 'f' : verb);
            std::vector<char> buf(static_cast<size_t>(prec < 0 ? 6 : prec) + 400);
            std::snprintf(buf.data(), buf.size(), fmt, prec < 0 ? 6 : prec, d);
            s = buf.data();
          }
        } else {
          s = BadVerb(verb, v);
        }
        break;
      default:
        s = std::string("%!") + verb + "(" + GoTypeName(v) + "=" + GoPrint(v) + ")";
        break;
    }
    out += Pad(s, width, minus, zero && numeric && !minus);
  }
  if (argi < args.size()) {
    out += "%!(EXTRA ";
    for (size_t k = argi; k < args.size(); ++k) {
      if (k > argi)
        out += ", ";
      out += GoTypeName(args[k]) + "=" + GoPrint(args[k]);
    }
    out += ")";
  }
  return out;
}

}  // namespace kiln::format::internal
