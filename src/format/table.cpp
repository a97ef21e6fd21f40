// podman's list output: the `table` prefix, headers from field names, and
// Go's text/tabwriter alignment (containers/common pkg/report).
#include <algorithm>
#include <string>
#include <vector>

#include "format/internal.h"
#include "kiln/format.h"

namespace kiln::format {

namespace {

size_t Runes(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80)
      ++n;
  return n;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r'))
    ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r'))
    --e;
  return std::string(s.substr(b, e - b));
}

// The escapes a shell user types for a tab or a newline.
std::string ExpandEscapes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 't' || s[i + 1] == 'n')) {
      out += s[i + 1] == 't' ? '\t' : '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A table format's body: escapes expanded and the blanks between actions
// made column breaks, as podman does (podman also turns the blanks inside
// actions into tabs, which breaks string literals; kiln leaves actions alone).
std::string TableBody(std::string_view body) {
  std::string s = ExpandEscapes(body);
  std::string out;
  size_t depth_pos = 0;
  while (depth_pos < s.size()) {
    size_t open = s.find("{{", depth_pos);
    std::string text = s.substr(depth_pos, open == std::string::npos ? std::string::npos : open - depth_pos);
    std::replace(text.begin(), text.end(), ' ', '\t');
    out += text;
    if (open == std::string::npos)
      break;
    // copy the action through its }} (quotes may hide a "}}")
    size_t p = open + 2;
    char quote = 0;
    while (p < s.size()) {
      char c = s[p];
      if (quote) {
        if (c == '\\' && quote == '"')
          ++p;
        else if (c == quote)
          quote = 0;
      } else if (c == '"' || c == '`') {
        quote = c;
      } else if (s.compare(p, 2, "}}") == 0) {
        p += 2;
        break;
      }
      ++p;
    }
    out += s.substr(open, std::min(p, s.size()) - open);
    depth_pos = p;
  }
  return out;
}

}  // namespace

std::string HeaderFor(std::string_view field) {
  // fatih/camelcase: runs of lower, upper, digit, other; an upper run
  // followed by a lower run gives its last letter to it ("IDFoo" -> ID Foo).
  auto cls = [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return std::islower(u) ? 1 : std::isupper(u) ? 2 : std::isdigit(u) ? 3 : 4;
  };
  std::vector<std::string> runs;
  int last = 0;
  for (char c : field) {
    int k = cls(c);
    if (runs.empty() || k != last)
      runs.emplace_back();
    runs.back() += c;
    last = k;
  }
  for (size_t i = 0; i + 1 < runs.size(); ++i)
    if (!runs[i].empty() && cls(runs[i][0]) == 2 && cls(runs[i + 1][0]) == 1) {
      runs[i + 1].insert(runs[i + 1].begin(), runs[i].back());
      runs[i].pop_back();
    }
  std::string out;
  for (const auto& r : runs) {  // an upper run of one letter gave it away
    if (r.empty())
      continue;
    if (!out.empty())
      out += ' ';
    out += r;
  }
  for (char& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string AlignTabs(std::string_view text) {
  // Split into lines of cells; a cell is tab-terminated, the line's last
  // text is not a cell (Go's tabwriter).
  struct Line {
    std::vector<std::string> cells;  // tab-terminated cells
    std::string tail;
    bool newline = false;
  };
  std::vector<Line> lines;
  size_t p = 0;
  while (p < text.size()) {
    Line l;
    size_t e = text.find('\n', p);
    std::string_view row = text.substr(p, e == std::string_view::npos ? std::string_view::npos : e - p);
    size_t q = 0;
    while (true) {
      size_t t = row.find('\t', q);
      if (t == std::string_view::npos) {
        l.tail = std::string(row.substr(q));
        break;
      }
      l.cells.emplace_back(row.substr(q, t - q));
      q = t + 1;
    }
    l.newline = e != std::string_view::npos;
    lines.push_back(std::move(l));
    p = e == std::string_view::npos ? text.size() : e + 1;
  }
  // Column widths per block of consecutive lines that have that column.
  std::vector<std::vector<size_t>> width(lines.size());
  for (size_t i = 0; i < lines.size(); ++i)
    width[i].assign(lines[i].cells.size(), 0);
  size_t max_cols = 0;
  for (const auto& l : lines)
    max_cols = std::max(max_cols, l.cells.size());
  for (size_t col = 0; col < max_cols; ++col) {
    size_t i = 0;
    while (i < lines.size()) {
      if (lines[i].cells.size() <= col) {
        ++i;
        continue;
      }
      size_t j = i, w = 12;  // minwidth 12
      for (; j < lines.size() && lines[j].cells.size() > col; ++j)
        w = std::max(w, Runes(lines[j].cells[col]) + 2);  // padding 2
      for (size_t k = i; k < j; ++k)
        width[k][col] = w;
      i = j;
    }
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    for (size_t c = 0; c < lines[i].cells.size(); ++c) {
      out += lines[i].cells[c];
      out.append(width[i][c] - Runes(lines[i].cells[c]), ' ');
    }
    out += lines[i].tail;
    if (lines[i].newline)
      out += '\n';
  }
  return out;
}

bool IsJsonFormat(std::string_view format) {
  std::string f = Trim(format);
  std::transform(f.begin(), f.end(), f.begin(), [](unsigned char c) { return std::tolower(c); });
  return f == "json";
}

Expected<std::string> RenderList(std::string_view format, const std::vector<nlohmann::json>& rows,
                                 const ListOptions& options) {
  std::string f(format);
  if (Trim(f).empty() || Trim(f) == "table")
    f = options.default_format;
  bool table = f.rfind("table", 0) == 0 && (f.size() == 5 || f[5] == ' ' || f[5] == '\t' || f[5] == '{');
  std::string body;
  if (table) {
    body = TableBody(f.substr(f.size() > 5 && (f[5] == ' ' || f[5] == '\t') ? 6 : 5));
  } else {
    body = ExpandEscapes(f);
  }
  if (body.empty() || body.back() != '\n')
    body += '\n';
  KILN_ASSIGN_OR_RETURN(Template tmpl, Template::Parse(body, options.template_options));
  std::string out;
  if (table && !options.no_heading) {
    KILN_ASSIGN_OR_RETURN(std::string h, tmpl.ExecuteHeaders(options.headers));
    out += h;
  }
  for (const auto& row : rows) {
    KILN_ASSIGN_OR_RETURN(std::string line, tmpl.Execute(row));
    out += line;
  }
  return table ? AlignTabs(out) : out;
}

Expected<std::string> RenderOne(std::string_view format, const nlohmann::json& value, const Options& options,
                                int indent) {
  if (Trim(format).empty() || IsJsonFormat(format))
    return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::string body = ExpandEscapes(format);
  if (body.empty() || body.back() != '\n')
    body += '\n';
  KILN_ASSIGN_OR_RETURN(Template tmpl, Template::Parse(body, options));
  return tmpl.Execute(value);
}

}  // namespace kiln::format
