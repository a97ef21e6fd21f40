#include "kiln/keyvalue.h"

namespace kiln {

namespace {

Error Invalid(std::string_view what, std::string_view item, std::string_view why) {
  return Error(Errc::kInvalidInput,
               "invalid " + std::string(what) + " \"" + std::string(item) + "\": " + std::string(why));
}

}  // namespace

Expected<std::pair<std::string, std::string>> ParseKeyValue(std::string_view item, std::string_view what,
                                                            bool value_required) {
  size_t eq = item.find('=');
  if (item.empty() || eq == 0)
    return Invalid(what, item, "empty key (want KEY=VALUE)");
  if (eq == std::string_view::npos) {
    if (value_required)
      return Invalid(what, item, "missing value (want KEY=VALUE)");
    return std::make_pair(std::string(item), std::string());
  }
  return std::make_pair(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
}

Status ParseKeyValues(const std::vector<std::string>& items, std::string_view what,
                      std::map<std::string, std::string>* out, bool value_required) {
  for (const auto& item : items) {
    KILN_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(item, what, value_required));
    (*out)[kv.first] = std::move(kv.second);
  }
  return Ok();
}

std::vector<std::string> SplitList(std::string_view text, char sep) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(sep, i);
    if (j == std::string_view::npos)
      j = text.size();
    if (j > i)
      parts.emplace_back(text.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

Expected<std::map<std::string, std::string>> ParseKeyValueList(std::string_view text, std::string_view what) {
  std::map<std::string, std::string> out;
  for (const std::string& part : SplitList(text)) {
    size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0)
      return Invalid(what, text, "\"" + part + "\" is not KEY=VALUE");
    out[part.substr(0, eq)] = part.substr(eq + 1);
  }
  return out;
}

Status ForEachSettingLine(std::string_view text, const std::function<Status(std::string_view line, int lineno)>& on_line) {
  int lineno = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++lineno;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos || line[start] == '#')
      continue;
    KILN_TRY(on_line(line.substr(start), lineno));
  }
  return Ok();
}

}  // namespace kiln
