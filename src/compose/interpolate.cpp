// Compose's text rules: variable interpolation (compose-spec
// 12-interpolation.md), .env files, shell-word splitting of command strings,
// project names.
#include <algorithm>
#include <cctype>
#include <string>

#include "kiln/compose.h"
#include "kiln/text.h"

namespace kiln::compose {

namespace {

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The index of the '}' that closes a "${" whose body starts at `i`, or npos.
size_t ClosingBrace(const std::string& s, size_t i) {
  int depth = 1;
  while (i < s.size()) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      i += 2;
      continue;
    }
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      ++depth;
      i += 2;
      continue;
    }
    if (s[i] == '}' && --depth == 0)
      return i;
    ++i;
  }
  return std::string::npos;
}

using Lookup = std::function<std::optional<std::string>(const std::string&)>;

Expected<std::string> InterpolateDepth(const std::string& text, const Lookup& lookup, std::vector<std::string>* unset,
                                       int depth) {
  if (depth > 20)
    return Error(Errc::kInvalidInput, "invalid interpolation format for \"" + text + "\": nested too deeply");
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$' || i + 1 == text.size()) {
      out += c;
      ++i;
      continue;
    }
    char n = text[i + 1];
    if (n == '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (IsNameStart(n)) {
      size_t j = i + 1;
      while (j < text.size() && IsNameChar(text[j]))
        ++j;
      std::string name = text.substr(i + 1, j - i - 1);
      auto v = lookup(name);
      if (!v && unset)
        unset->push_back(name);
      out += v.value_or("");
      i = j;
      continue;
    }
    if (n != '{') {
      out += c;  // not a variable: kept as written
      ++i;
      continue;
    }
    size_t close = ClosingBrace(text, i + 2);
    if (close == std::string::npos)
      return Error(Errc::kInvalidInput, "invalid interpolation format for \"" + text + "\": missing closing brace");
    std::string body = text.substr(i + 2, close - i - 2);
    size_t k = 0;
    while (k < body.size() && IsNameChar(body[k]))
      ++k;
    std::string name = body.substr(0, k);
    if (name.empty() || !IsNameStart(name[0]))
      return Error(Errc::kInvalidInput, "invalid interpolation format for \"" + text + "\": \"${" + body +
                                            "}\" does not start with a variable name");
    std::string op, arg;
    if (k < body.size()) {
      if (body[k] == ':' && k + 1 < body.size() && std::string("-?+").find(body[k + 1]) != std::string::npos) {
        op = body.substr(k, 2);
      } else if (std::string("-?+").find(body[k]) != std::string::npos) {
        op = body.substr(k, 1);
      } else {
        return Error(Errc::kInvalidInput,
                     "invalid interpolation format for \"" + text + "\": unsupported \"${" + body + "}\"");
      }
      arg = body.substr(k + op.size());
    }
    auto value = lookup(name);
    bool set = value.has_value();
    bool nonempty = set && !value->empty();
    auto expand = [&](const std::string& a) { return InterpolateDepth(a, lookup, unset, depth + 1); };
    if (op.empty()) {
      if (!set && unset)
        unset->push_back(name);
      out += value.value_or("");
    } else {
      // ${NAME:-WORD}/${NAME-WORD}: WORD when NAME is empty or unset (unset
      // only, without ':'); ${NAME:?WORD}: an error saying WORD then;
      // ${NAME:+WORD}/${NAME+WORD}: WORD when it is set (and not empty).
      bool present = op[0] == ':' ? nonempty : set;
      char kind = op.back();
      if (kind == '+' ? !present : present) {
        if (kind != '+')
          out += *value;
      } else {
        KILN_ASSIGN_OR_RETURN(std::string word, expand(arg));
        if (kind == '?')
          return Error(Errc::kInvalidInput, "required variable " + name + " is missing a value" +
                                                (word.empty() ? std::string() : ": " + word));
        out += word;
      }
    }
    i = close + 1;
  }
  return out;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos)
    return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

}  // namespace

Expected<std::string> Interpolate(const std::string& text, const Lookup& lookup, std::vector<std::string>* unset) {
  if (text.find('$') == std::string::npos)
    return text;
  return InterpolateDepth(text, lookup, unset, 0);
}

Expected<std::vector<std::pair<std::string, std::string>>> ParseDotEnv(const std::string& text,
                                                                       const std::string& file,
                                                                       const Lookup& lookup) {
  std::vector<std::pair<std::string, std::string>> out;
  auto local = [&](const std::string& name) -> std::optional<std::string> {
    for (auto it = out.rbegin(); it != out.rend(); ++it)
      if (it->first == name)
        return it->second;
    return lookup(name);
  };
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos)
      eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    ++line_no;
    int start_line = line_no;
    pos = eol + 1;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#')
      continue;
    if (t.rfind("export ", 0) == 0)
      t = Trim(t.substr(7));
    size_t eq = t.find('=');
    std::string where = file + ":" + std::to_string(start_line);
    if (eq == std::string::npos) {
      if (!std::all_of(t.begin(), t.end(), [](char ch) { return IsNameChar(ch) || ch == '.' || ch == '-'; }))
        return Error(Errc::kInvalidInput, where + ": \"" + t + "\" is not KEY=VALUE");
      if (auto v = lookup(t))
        out.emplace_back(t, *v);
      continue;
    }
    std::string key = Trim(t.substr(0, eq));
    if (key.empty() || key.find_first_of(" \t") != std::string::npos)
      return Error(Errc::kInvalidInput, where + ": invalid variable name \"" + key + "\"");
    // The value starts after '=' in the untrimmed text so that quoted values may span lines.
    size_t vstart = line.find('=') + 1;
    std::string rest = line.substr(vstart);
    size_t lead = rest.find_first_not_of(" \t");
    std::string value;
    if (lead != std::string::npos && (rest[lead] == '\'' || rest[lead] == '"')) {
      char q = rest[lead];
      // Quoted: may continue on the following lines.
      size_t abs = pos - (line.size() + 1) + vstart + lead + 1;  // index in `text` after the quote
      size_t k = abs;
      std::string raw;
      bool closed = false;
      while (k < text.size()) {
        char ch = text[k];
        if (q == '"' && ch == '\\' && k + 1 < text.size()) {
          char e = text[k + 1];
          if (e == '$') {
            raw += "$$";  // a literal dollar through the interpolation below
          } else if (e != '\0' && std::string_view("ntr\"\\").find(e) != std::string_view::npos) {
            raw += UnescapeChar(e);  // the escapes of a .env file
          } else {
            raw += '\\';
            raw += e;
          }
          k += 2;
          continue;
        }
        if (ch == q) {
          closed = true;
          break;
        }
        if (ch == '\n')
          ++line_no;
        raw += ch;
        ++k;
      }
      if (!closed)
        return Error(Errc::kInvalidInput, where + ": unterminated quoted value of " + key);
      size_t next = text.find('\n', k);
      pos = next == std::string::npos ? text.size() : next + 1;
      if (q == '\'') {
        value = raw;
      } else {
        auto v = Interpolate(raw, local, nullptr);
        if (!v)
          return std::move(v).error().WithContext(where);
        value = *v;
      }
    } else {
      std::string v = rest;
      size_t hash = v.find(" #");
      if (hash != std::string::npos)
        v = v.substr(0, hash);
      auto iv = Interpolate(Trim(v), local, nullptr);
      if (!iv)
        return std::move(iv).error().WithContext(where);
      value = *iv;
    }
    out.emplace_back(key, value);
  }
  return out;
}

Expected<std::vector<std::string>> SplitShellWords(const std::string& text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word)
        words.push_back(cur);
      cur.clear();
      in_word = false;
      ++i;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (i + 1 < text.size())
        cur += text[i + 1];
      i += 2;
      continue;
    }
    if (c == '\'') {
      size_t end = text.find('\'', i + 1);
      if (end == std::string::npos)
        return Error(Errc::kInvalidInput, "unterminated single quote in \"" + text + "\"");
      cur += text.substr(i + 1, end - i - 1);
      i = end + 1;
      continue;
    }
    if (c == '"') {
      size_t j = i + 1;
      bool closed = false;
      while (j < text.size()) {
        if (text[j] == '\\' && j + 1 < text.size() && std::string("\"\\$`").find(text[j + 1]) != std::string::npos) {
          cur += text[j + 1];
          j += 2;
          continue;
        }
        if (text[j] == '"') {
          closed = true;
          break;
        }
        cur += text[j++];
      }
      if (!closed)
        return Error(Errc::kInvalidInput, "unterminated double quote in \"" + text + "\"");
      i = j + 1;
      continue;
    }
    cur += c;
    ++i;
  }
  if (in_word)
    words.push_back(cur);
  return words;
}

bool IsValidProjectName(const std::string& name) {
  if (name.empty() || !(std::islower(static_cast<unsigned char>(name[0])) || std::isdigit(static_cast<unsigned char>(name[0]))))
    return false;
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' ||
          c == '_'))
      return false;
  return true;
}

std::string NormalizeProjectName(const std::string& name) {
  std::string out;
  for (char c : name) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::islower(static_cast<unsigned char>(l)) || std::isdigit(static_cast<unsigned char>(l)) || l == '-' ||
        l == '_')
      out += l;
  }
  size_t first = 0;
  while (first < out.size() && (out[first] == '-' || out[first] == '_'))
    ++first;
  return out.substr(first);
}

}  // namespace kiln::compose
