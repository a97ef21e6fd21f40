#include "text_util.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

#include "kiln/fs.h"

namespace kiln::frontend::text {

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string CleanPath(std::string_view p) {
  if (p.empty())
    return ".";
  bool rooted = p[0] == '/';
  std::vector<std::string> out;
  size_t dotdots = 0;  // leading ".." kept for relative paths
  for (std::string& seg : PathComponents(p)) {
    if (seg != "..") {
      out.push_back(std::move(seg));
    } else if (out.size() > dotdots) {
      out.pop_back();
    } else if (!rooted) {
      out.push_back(std::move(seg));
      ++dotdots;
    }
  }
  std::string result = rooted ? "/" : "";
  for (size_t i = 0; i < out.size(); ++i) {
    if (i > 0)
      result += '/';
    result += out[i];
  }
  if (result.empty())
    return ".";
  return result;
}

}  // namespace kiln::frontend::text
