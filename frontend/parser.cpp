// ParseContainerfile: BuildKit's Dockerfile parser (frontend/dockerfile/
// parser), reproduced rule for rule as described in
// shared/conformance/buildkit/FORMAT.md §1-3 and §6, plus kiln's own checks
// (unknown instructions are errors). See docs/containerfile.md.
#include <climits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/containerfile.h"
#include "lexer.h"
#include "quote.h"

namespace kiln::frontend {
namespace {

constexpr size_t kMaxLineBytes = 65535;  // BuildKit: bufio.MaxScanTokenSize - 1
constexpr size_t kExcerptBytes = 80;     // how much offending text an error shows

/// The offending text for an error message: Go-quoted, cut after
/// kExcerptBytes.
std::string Excerpt(std::string_view text) {
  if (text.size() <= kExcerptBytes)
    return GoQuote(text);
  size_t cut = kExcerptBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;  // do not split a UTF-8 sequence
  return GoQuote(text.substr(0, cut)) + "...";
}

// `s` with ASCII letters in `from`..`from`+25 moved to the other case.
std::string AsciiCase(std::string_view s, char from, char to) {
  std::string out(s);
  for (char& c : out)
    if (c >= from && c <= from + 25)
      c = static_cast<char>(c - from + to);
  return out;
}
std::string AsciiLower(std::string_view s) { return AsciiCase(s, 'A', 'a'); }
std::string AsciiUpper(std::string_view s) { return AsciiCase(s, 'a', 'A'); }

/// How an instruction's argument text becomes argument nodes (FORMAT.md
/// §1.4 table).
enum class Shape {
  kWhitespaceList,  // FROM, EXPOSE
  kMaybeJsonList,   // ADD, COPY, VOLUME
  kMaybeJson,       // RUN, CMD, ENTRYPOINT, SHELL
  kVerbatim,        // MAINTAINER, USER, WORKDIR, STOPSIGNAL
  kHealthcheck,     // HEALTHCHECK
  kNameValue,       // ENV, LABEL
  kWords,           // ARG
  kSubCommand,      // ONBUILD
};

std::optional<Shape> ShapeOf(std::string_view keyword) {
  static const std::pair<std::string_view, Shape> kTable[] = {
      {"add", Shape::kMaybeJsonList},   {"arg", Shape::kWords},
      {"cmd", Shape::kMaybeJson},       {"copy", Shape::kMaybeJsonList},
      {"entrypoint", Shape::kMaybeJson}, {"env", Shape::kNameValue},
      {"expose", Shape::kWhitespaceList}, {"from", Shape::kWhitespaceList},
      {"healthcheck", Shape::kHealthcheck}, {"label", Shape::kNameValue},
      {"maintainer", Shape::kVerbatim}, {"onbuild", Shape::kSubCommand},
      {"run", Shape::kMaybeJson},       {"shell", Shape::kMaybeJson},
      {"stopsignal", Shape::kVerbatim}, {"user", Shape::kVerbatim},
      {"volume", Shape::kMaybeJsonList}, {"workdir", Shape::kVerbatim},
  };
  for (const auto& [name, shape] : kTable)
    if (name == keyword)
      return shape;
  return std::nullopt;
}

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/// Parses one logical line into an instruction. Errors carry no location;
/// the caller adds it.
class LineParser {
 public:
  explicit LineParser(char escape) : escape_(escape) {}

  /// `nested` is true for the instruction under ONBUILD.
  Expected<Instruction> Parse(std::string_view line, bool nested) const {
    Instruction inst;
    inst.original = std::string(line);
    std::string_view trimmed = lex::TrimSpace(line);
    size_t cut = 0;
    while (cut < trimmed.size() && !lex::IsBlankByte(trimmed[cut]))
      ++cut;
    std::string_view word = trimmed.substr(0, cut);
    std::string_view rest_raw;
    if (cut < trimmed.size()) {
      size_t next = cut;
      while (next < trimmed.size() && lex::IsBlankByte(trimmed[next]))
        ++next;
      rest_raw = trimmed.substr(next);
    }
    inst.keyword = AsciiLower(word);
    std::optional<Shape> shape = ShapeOf(inst.keyword);
    if (!shape) {
      std::string near = lex::Suggest(inst.keyword, {"add", "arg", "cmd", "copy", "entrypoint", "env", "expose",
                                                     "from", "healthcheck", "label", "maintainer", "onbuild",
                                                     "run", "shell", "stopsignal", "user", "volume", "workdir"});
      return Fail("unknown instruction " + Excerpt(word) +
                  (near.empty() ? "" : " (did you mean " + AsciiUpper(near) + "?)"));
    }
    std::string_view rest;
    lex::ExtractFlags(rest_raw, escape_, &inst.flags, &rest);
    rest = lex::TrimSpace(rest);
    KILN_TRY(ParseArgs(*shape, rest, nested, &inst));
    return inst;
  }

 private:
  static Error Fail(std::string message) { return Error(Errc::kInvalidInput, std::move(message)); }

  Status ParseArgs(Shape shape, std::string_view rest, bool nested, Instruction* inst) const {
    switch (shape) {
      case Shape::kWhitespaceList:
        if (!rest.empty())
          inst->args = lex::SplitBlank(rest);
        return Ok();
      case Shape::kMaybeJsonList: {
        KILN_ASSIGN_OR_RETURN(bool json, JsonArgs(rest, inst));
        if (!json && !rest.empty())
          inst->args = lex::SplitBlank(rest);
        return Ok();
      }
      case Shape::kMaybeJson:
        return ParseMaybeJson(rest, inst);
      case Shape::kVerbatim:
        if (!rest.empty())
          inst->args.emplace_back(rest);
        return Ok();
      case Shape::kHealthcheck: {
        if (rest.empty())
          return Ok();
        size_t sep = 0;
        while (sep < rest.size() && !IsAsciiSpace(rest[sep]))
          ++sep;
        size_t next = sep;
        while (next < rest.size() && IsAsciiSpace(rest[next]))
          ++next;
        inst->args.emplace_back(rest.substr(0, sep));
        return ParseMaybeJson(rest.substr(next), inst);
      }
      case Shape::kNameValue:
        return ParseNameValue(rest, inst);
      case Shape::kWords:
        inst->args = lex::SplitWordsKeepQuotes(rest, escape_);
        return Ok();
      case Shape::kSubCommand: {
        if (rest.empty())
          return Ok();
        if (nested)
          return Fail("ONBUILD ONBUILD is not allowed: " + Excerpt(inst->original));
        KILN_ASSIGN_OR_RETURN(Instruction sub, Parse(rest, /*nested=*/true));
        inst->sub.push_back(std::move(sub));
        return Ok();
      }
    }
    return Ok();
  }

  Status ParseMaybeJson(std::string_view rest, Instruction* inst) const {
    if (rest.empty())
      return Ok();
    KILN_ASSIGN_OR_RETURN(bool json, JsonArgs(rest, inst));
    if (!json)
      inst->args.emplace_back(rest);
    return Ok();
  }

  // `rest` as a JSON array of strings appended to the args (true); false
  // when it is no JSON array, an error when its items are not all strings.
  static Expected<bool> JsonArgs(std::string_view rest, Instruction* inst) {
    std::vector<std::string> values;
    switch (lex::ParseJsonStringArray(rest, &values)) {
      case lex::JsonArray::kStrings:
        for (auto& v : values)
          inst->args.push_back(std::move(v));
        inst->json_form = true;
        return true;
      case lex::JsonArray::kNotStringArray:
        return NotStringArray(*inst).error();
      case lex::JsonArray::kNotJson:
        break;
    }
    return false;
  }

  static Status NotStringArray(const Instruction& inst) {
    return Fail("when using JSON array syntax, arrays must be comprised of strings only: " +
                Excerpt(inst.original));
  }

  Status ParseNameValue(std::string_view rest, Instruction* inst) const {
    std::vector<std::string> words = lex::SplitWordsKeepQuotes(rest, escape_);
    if (words.empty())
      return Ok();
    std::string upper = AsciiUpper(inst->keyword);
    if (words[0].find('=') == std::string::npos) {
      // Legacy form: KEY value...
      std::vector<std::string> parts = lex::SplitBlank(rest, 2);
      if (parts.size() < 2)
        return Fail(upper + " must have two arguments: " + Excerpt(inst->original));
      inst->args = {std::move(parts[0]), std::move(parts[1]), ""};
      return Ok();
    }
    for (const std::string& word : words) {
      size_t eq = word.find('=');
      if (eq == std::string::npos)
        return Fail(upper + ": can't find = in " + Excerpt(word) +
                    "; must be of the form name=value");
      inst->args.push_back(word.substr(0, eq));
      inst->args.push_back(word.substr(eq + 1));
      inst->args.emplace_back("=");
    }
    return Ok();
  }

  char escape_;
};

/// Whether heredocs are looked for after this instruction: RUN, COPY and
/// ADD (also under ONBUILD) in shell form.
bool CanContainHeredoc(const Instruction& inst) {
  const Instruction* target = &inst;
  if (inst.keyword == "onbuild" && !inst.sub.empty())
    target = &inst.sub[0];
  if (target->keyword != "run" && target->keyword != "copy" && target->keyword != "add")
    return false;
  return !target->json_form;
}

/// Parses one word that may be a heredoc marker `[fd]<<[-]WORD`. Returns
/// nullopt in `*doc` when the word is not one; an error for a malformed
/// delimiter (an unterminated quote).
Status HeredocFromWord(std::string_view word, std::optional<Heredoc>* doc) {
  doc->reset();
  size_t i = 0;
  while (i < word.size() && word[i] >= '0' && word[i] <= '9')
    ++i;
  std::string_view digits = word.substr(0, i);
  if (word.substr(i, 2) != "<<")
    return Ok();
  i += 2;
  bool chomp = false;
  if (i < word.size() && word[i] == '-') {
    chomp = true;
    ++i;
  }
  std::string_view rest = word.substr(i);
  if (rest.empty() || rest.find('<') != std::string_view::npos)
    return Ok();
  auto words = lex::ShellWords(rest, /*raw_quotes=*/false, /*raw_escapes=*/false);
  if (!words)
    return Error(Errc::kInvalidInput, "invalid heredoc delimiter " + Excerpt(word) + ": unterminated quote");
  if (words->size() != 1)
    return Ok();
  auto raw = lex::ShellWords(rest, /*raw_quotes=*/true, /*raw_escapes=*/false);
  if (!raw || raw->size() != 1)
    return Error(Errc::kInvalidInput, "invalid heredoc delimiter " + Excerpt(word));
  auto quotes = [](const std::string& s) {
    size_t n = 0;
    for (char c : s)
      n += (c == '\'' || c == '"') ? 1 : 0;
    return n;
  };
  Heredoc h;
  h.name = (*words)[0];
  h.expand = quotes((*words)[0]) == quotes((*raw)[0]);
  h.chomp = chomp;
  long long fd = 0;
  for (char c : digits) {
    fd = fd * 10 + (c - '0');
    if (fd > INT_MAX) {
      fd = INT_MAX;
      break;
    }
  }
  h.file_descriptor = static_cast<int>(fd);
  *doc = std::move(h);
  return Ok();
}

Status HeredocsFromLine(std::string_view line, std::vector<Heredoc>* docs) {
  docs->clear();
  // BuildKit ignores lexing errors of the whole line: no heredocs then.
  auto words = lex::ShellWords(line, /*raw_quotes=*/true, /*raw_escapes=*/true);
  if (!words)
    return Ok();
  for (const std::string& word : *words) {
    std::optional<Heredoc> doc;
    KILN_TRY(HeredocFromWord(word, &doc));
    if (doc)
      docs->push_back(std::move(*doc));
  }
  return Ok();
}

std::string_view TrimNewline(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool IsCommentLine(std::string_view line) {
  std::string_view t = lex::TrimLeftSpace(TrimNewline(line));
  return !t.empty() && t[0] == '#';
}

/// The frontend images whose syntax kiln implements itself.
bool IsDefaultSyntax(std::string_view value) {
  std::string_view image = value.substr(0, value.find(' '));
  for (std::string_view prefix : {"docker.io/", "index.docker.io/"})
    if (image.substr(0, prefix.size()) == prefix)
      image.remove_prefix(prefix.size());
  size_t end = image.find_first_of(":@");
  std::string_view name = image.substr(0, end);
  return name == "docker/dockerfile" || name == "docker/dockerfile-upstream";
}

class FileParser {
 public:
  FileParser(std::string_view text, std::string_view filename) : filename_(filename) {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
      lines_.push_back(text.substr(pos, end - pos));
      pos = end;
    }
    file_.filename = std::string(filename);
  }

  Expected<File> Run() {
    while (next_ < lines_.size()) {
      KILN_ASSIGN_OR_RETURN(std::string_view raw, NextLine());
      if (current_line_ == 1 && raw.substr(0, 3) == "\xEF\xBB\xBF")
        raw.remove_prefix(3);
      std::string_view token = lex::TrimLeftSpace(TrimNewline(raw));
      KILN_TRY(MaybeDirective(token));
      if (!token.empty() && token[0] == '#')
        token = {};
      int start_line = current_line_;
      auto [first, end_of_line] = TrimContinuation(token);
      if (end_of_line && first.empty())
        continue;
      std::string line(first);
      bool empty_continuation = false;
      while (!end_of_line && next_ < lines_.size()) {
        KILN_ASSIGN_OR_RETURN(std::string_view cont, NextLine());
        if (IsCommentLine(cont))
          continue;
        std::string_view text = TrimNewline(cont);
        if (lex::TrimLeftSpace(text).empty()) {
          empty_continuation = true;
          continue;
        }
        auto [piece, eol] = TrimContinuation(text);
        line += piece;
        end_of_line = eol;
      }
      KILN_TRY(AddInstruction(line, start_line, empty_continuation));
    }
    if (file_.instructions.empty())
      return LocatedError(current_line_ > 0 ? current_line_ : 1, "file with no instructions");
    file_.start_line = file_.instructions.front().start_line;
    file_.end_line = file_.instructions.back().end_line;
    return std::move(file_);
  }

 private:
  Error LocatedError(int line, std::string_view what) const {
    return Error(Errc::kInvalidInput,
                 filename_ + ":" + std::to_string(line) + ": " + std::string(what));
  }

  /// The next physical line (with its '\n'); counts it.
  Expected<std::string_view> NextLine() {
    std::string_view raw = lines_[next_++];
    ++current_line_;
    if (TrimNewlineOnly(raw).size() > kMaxLineBytes)
      return LocatedError(current_line_, "line longer than " + std::to_string(kMaxLineBytes) + " bytes");
    return raw;
  }

  static std::string_view TrimNewlineOnly(std::string_view s) {
    if (!s.empty() && s.back() == '\n')
      s.remove_suffix(1);
    return s;
  }

  /// `# name=value` on the leading lines (FORMAT.md §1.3).
  Status MaybeDirective(std::string_view token) {
    if (directives_done_)
      return Ok();
    auto is_re_space = [](char c) {
      return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
    };
    auto done = [this] {
      directives_done_ = true;
      return Ok();
    };
    if (token.empty() || token[0] != '#')
      return done();
    size_t i = 1;
    while (i < token.size() && is_re_space(token[i]))
      ++i;
    auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    size_t name_start = i;
    if (i >= token.size() || !is_alpha(token[i]))
      return done();
    while (i < token.size() && (is_alpha(token[i]) || is_digit(token[i])))
      ++i;
    std::string name = AsciiLower(token.substr(name_start, i - name_start));
    while (i < token.size() && is_re_space(token[i]))
      ++i;
    if (i >= token.size() || token[i] != '=')
      return done();
    ++i;
    std::string_view value = token.substr(i);
    while (!value.empty() && is_re_space(value.front()))
      value.remove_prefix(1);
    while (!value.empty() && is_re_space(value.back()))
      value.remove_suffix(1);
    if (value.empty() || value.find('\n') != std::string_view::npos)
      return done();
    if (name != "syntax" && name != "escape" && name != "check")
      return done();
    for (const std::string& seen : seen_directives_)
      if (seen == name)
        return LocatedError(current_line_, "only one " + name + " parser directive can be used: " +
                                               Excerpt(token));
    seen_directives_.push_back(name);
    if (name == "escape") {
      if (value != "`" && value != "\\")
        return LocatedError(current_line_, "invalid escape token " + Excerpt(value) +
                                               " in escape directive: must be ` or \\");
      file_.escape = value[0];
    } else if (name == "syntax") {
      file_.syntax = std::string(value);
      if (!IsDefaultSyntax(value))
        file_.warnings.push_back(
            {current_line_, "syntax directive " + Excerpt(value) +
                                " ignored: kiln uses its built-in Containerfile parser and never "
                                "fetches frontend images"});
    } else {
      file_.check = std::string(value);
    }
    return Ok();
  }

  /// Removes a line-continuation escape token (and the blanks after it);
  /// returns the text and whether the instruction ends on this line.
  std::pair<std::string_view, bool> TrimContinuation(std::string_view s) const {
    size_t t = s.size();
    while (t > 0 && (s[t - 1] == ' ' || s[t - 1] == '\t'))
      --t;
    if (t > 0 && s[t - 1] == file_.escape && (t == 1 || s[t - 2] != file_.escape))
      return {s.substr(0, t - 1), false};
    return {s, true};
  }

  Status AddInstruction(const std::string& line, int start_line, bool empty_continuation) {
    LineParser parser(file_.escape);
    auto parsed = parser.Parse(line, /*nested=*/false);
    if (!parsed)
      return LocatedError(start_line, parsed.error().message());
    Instruction inst = std::move(*parsed);
    if (empty_continuation)
      file_.warnings.push_back({start_line, "empty continuation line in " + AsciiUpper(inst.keyword) +
                                                " instruction (empty continuation lines will "
                                                "become errors in a future release)"});
    if (CanContainHeredoc(inst)) {
      std::vector<Heredoc> docs;
      if (Status st = HeredocsFromLine(line, &docs); !st)
        return LocatedError(start_line, st.error().message());
      for (Heredoc& doc : docs) {
        bool terminated = false;
        while (next_ < lines_.size()) {
          KILN_ASSIGN_OR_RETURN(std::string_view raw, NextLine());
          std::string_view candidate = TrimNewline(raw);
          if (doc.chomp)
            while (!candidate.empty() && candidate.front() == '\t')
              candidate.remove_prefix(1);
          if (candidate == doc.name) {
            terminated = true;
            break;
          }
          doc.content += raw;
        }
        if (!terminated)
          return LocatedError(start_line, "unterminated heredoc " + Excerpt(doc.name));
      }
      if (!inst.sub.empty())
        inst.sub[0].heredocs = docs;
      inst.heredocs = std::move(docs);
    }
    inst.start_line = start_line;
    inst.end_line = current_line_;
    for (Instruction& sub : inst.sub) {
      sub.start_line = start_line;
      sub.end_line = current_line_;
    }
    file_.instructions.push_back(std::move(inst));
    return Ok();
  }

  std::string filename_;
  std::vector<std::string_view> lines_;
  size_t next_ = 0;
  int current_line_ = 0;
  bool directives_done_ = false;
  std::vector<std::string> seen_directives_;
  File file_;
};

}  // namespace

Expected<File> ParseContainerfile(std::string_view text, std::string_view filename) {
  FileParser parser(text, filename);
  return parser.Run();
}

}  // namespace kiln::frontend
