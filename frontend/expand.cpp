// Shell-word expansion with BuildKit's semantics. The lexer walks the word
// one Unicode character at a time (invalid UTF-8 bytes are carried through
// as single characters) and mirrors BuildKit's recursive structure: a word is
// processed up to a stop character, '$' starts an expansion whose modifier
// word is itself processed recursively.
#include "expand.h"

#include <re2/re2.h>

#include <cctype>
#include <cstdint>
#include <memory>
#include <set>
#include <utility>

#include "kiln/text.h"
#include "lexer.h"

namespace kiln::frontend {
namespace {

constexpr int32_t kEof = -1;

/// One character of the input: its code point (U+FFFD for an invalid byte)
/// and its bytes in the source.
struct Rune {
  int32_t cp = kEof;
  std::string_view bytes;
};

/// Decodes the UTF-8 character at s[pos]. An invalid or truncated sequence
/// yields one byte with code point U+FFFD.
Rune DecodeAt(std::string_view s, size_t pos) {
  if (pos >= s.size())
    return {};
  auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80)
    return {b0, s.substr(pos, 1)};
  size_t len = 0;
  int32_t cp = 0;
  int32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return {0xFFFD, s.substr(pos, 1)};
  }
  if (pos + len > s.size())
    return {0xFFFD, s.substr(pos, 1)};
  for (size_t i = 1; i < len; ++i) {
    auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80)
      return {0xFFFD, s.substr(pos, 1)};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return {0xFFFD, s.substr(pos, 1)};
  return {cp, s.substr(pos, len)};
}

std::vector<std::string_view> SplitRunes(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t pos = 0; pos < s.size();) {
    Rune r = DecodeAt(s, pos);
    out.push_back(r.bytes);
    pos += r.bytes.size();
  }
  return out;
}

/// Go's unicode.IsSpace (kEof is none).
bool IsSpace(int32_t cp) { return cp >= 0 && lex::IsSpace(static_cast<char32_t>(cp)); }

/// Go's unicode.IsDigit (category Nd).
bool IsDigit(const Rune& r) {
  if (r.cp < 0x80)
    return r.cp >= '0' && r.cp <= '9';
  static const RE2 kDigit("\\p{Nd}");
  return RE2::FullMatch(r.bytes, kDigit);
}

/// Go's unicode.IsLetter (category L).
bool IsLetter(const Rune& r) {
  if (r.cp < 0x80)
    return (r.cp >= 'a' && r.cp <= 'z') || (r.cp >= 'A' && r.cp <= 'Z');
  if (r.cp == 0xFFFD && r.bytes.size() == 1)
    return false;
  static const RE2 kLetter("\\pL");
  return RE2::FullMatch(r.bytes, kLetter);
}

bool IsSpecialParam(int32_t cp) {
  switch (cp) {
    case '@': case '*': case '#': case '?': case '-': case '$': case '!': case '0':
      return true;
    default:
      return false;
  }
}

/// Quotes like Go's %q closely enough for error messages.
std::string Quote(std::string_view s) { return QuoteWith(s, '"'); }

/// Quote() of at most the first 80 bytes of a word.
std::string QuoteHead(std::string_view s) {
  return s.size() <= 80 ? Quote(s) : Quote(s.substr(0, 77)) + "...";
}

/// Splits into words the way BuildKit does: unquoted literal whitespace and
/// whitespace in unquoted expansion results separate words; quoted text and
/// escaped characters never do.
class WordSplitter {
 public:
  void AddChar(const Rune& r) {
    if (IsSpace(r.cp)) {
      if (in_word_ && !buf_.empty()) {
        words_.push_back(std::move(buf_));
        buf_.clear();
        in_word_ = false;
      }
      return;
    }
    AddRaw(r.bytes);
  }
  void AddRaw(std::string_view s) {
    buf_ += s;
    in_word_ = true;
  }
  void AddString(std::string_view s) {
    for (size_t pos = 0; pos < s.size();) {
      Rune r = DecodeAt(s, pos);
      AddChar(r);
      pos += r.bytes.size();
    }
  }
  std::vector<std::string> Take() {
    if (!buf_.empty())
      words_.push_back(std::move(buf_));
    buf_.clear();
    in_word_ = false;
    return std::move(words_);
  }

 private:
  std::string buf_;
  std::vector<std::string> words_;
  bool in_word_ = false;
};

Error Bad(std::string message) { return Error(Errc::kInvalidInput, std::move(message)); }

std::string SizeText(size_t n) {
  if (n >= (size_t(1) << 20) && n % (size_t(1) << 20) == 0)
    return std::to_string(n >> 20) + " MiB";
  return std::to_string(n) + " bytes";
}

Error TooLarge(size_t max) {
  return Bad("the expansion result is larger than " + SizeText(max) + " (a variable doubling itself?)");
}

/// Finds the leftmost-first match of `re` in text[start:], returning its
/// byte range in `text`.
bool Find(const RE2& re, std::string_view text, size_t start, RE2::Anchor anchor, size_t* begin,
          size_t* end) {
  re2::StringPiece whole(text.data(), text.size());
  re2::StringPiece m;
  if (!re.Match(whole, start, text.size(), anchor, &m, 1))
    return false;
  *begin = static_cast<size_t>(m.data() - text.data());
  *end = *begin + m.size();
  return true;
}

// ---------------------------------------------------------------------------
// Shell patterns of ${V#p} ${V%p} ${V/p/r}: '*' and '?' wildcards, '\' escapes
// only '*', '?' and '\' ('\}' and '\/' stand for '}' and '/'), no brackets.

Expected<std::string> PatternToRegex(std::string_view pattern, bool greedy, bool anchored) {
  std::string out = anchored ? "^" : "";
  for (size_t pos = 0; pos < pattern.size();) {
    Rune r = DecodeAt(pattern, pos);
    pos += r.bytes.size();
    if (r.cp == '*') {
      out += greedy ? ".*" : ".*?";
      continue;
    }
    if (r.cp == '?') {
      out += '.';
      continue;
    }
    if (r.cp == '\\') {
      Rune next = DecodeAt(pattern, pos);
      if (next.cp == '}' || next.cp == '/')
        continue;  // the escape protected the delimiter; it is not part of the pattern
      if (next.cp != '*' && next.cp != '?' && next.cp != '\\') {
        std::string shown = next.cp == kEof ? std::string() : std::string(next.bytes);
        return Bad("invalid escape '\\" + shown + "'");
      }
      pos += next.bytes.size();
      r = next;
    }
    if (r.bytes.size() == 1 && r.cp < 0x80 && !std::isalnum(static_cast<unsigned char>(r.cp)) &&
        r.cp != '_')
      out += '\\';
    out += r.bytes;
  }
  return out;
}

Expected<std::unique_ptr<RE2>> CompilePattern(std::string_view pattern, bool greedy,
                                              bool anchored) {
  auto regex = PatternToRegex(pattern, greedy, anchored);
  if (!regex)
    return Bad("invalid pattern (" + std::string(pattern) + ") in substitution: " +
               regex.error().message());
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<RE2>(*regex, options);
  if (!re->ok())
    return Bad("invalid pattern (" + std::string(pattern) + ") in substitution: " + re->error());
  return re;
}

Expected<std::string> TrimPrefix(std::string_view pattern, std::string_view value, bool greedy) {
  KILN_ASSIGN_OR_RETURN(auto re, CompilePattern(pattern, greedy, true));
  size_t begin = 0, end = 0;
  if (Find(*re, value, 0, RE2::ANCHOR_START, &begin, &end))
    value.remove_prefix(end);
  return std::string(value);
}

/// Reverses a pattern by characters, keeping each '\x' pair in order.
std::string ReversePattern(std::string_view pattern) {
  std::vector<std::string_view> runes = SplitRunes(pattern);
  std::vector<std::string> units;
  for (size_t i = 0; i < runes.size();) {
    if (runes[i] == "\\" && i + 1 < runes.size()) {
      units.push_back(std::string(runes[i]) + std::string(runes[i + 1]));
      i += 2;
    } else {
      units.emplace_back(runes[i]);
      ++i;
    }
  }
  std::string out;
  for (auto it = units.rbegin(); it != units.rend(); ++it)
    out += *it;
  return out;
}

std::string ReverseString(std::string_view s) {
  std::vector<std::string_view> runes = SplitRunes(s);
  std::string out;
  out.reserve(s.size());
  for (auto it = runes.rbegin(); it != runes.rend(); ++it)
    out += *it;
  return out;
}

/// Shortest/longest suffix removal: a leftmost match on the reversed value
/// with the reversed pattern.
Expected<std::string> TrimSuffix(std::string_view pattern, std::string_view value, bool greedy) {
  KILN_ASSIGN_OR_RETURN(std::string trimmed,
                        TrimPrefix(ReversePattern(pattern), ReverseString(value), greedy));
  return ReverseString(trimmed);
}

/// Go's regexp.Expand of a replacement template against a match without
/// capture groups: "$$" is '$', "$0"/"${0}" the match, any other valid
/// "$name"/"${name}" empty, a malformed '$' literal. Appends to `out`;
/// false as soon as `out` is longer than `max`.
bool ExpandTemplate(std::string_view tmpl, std::string_view match, size_t max, std::string& out) {
  while (!tmpl.empty()) {
    if (out.size() > max)
      return false;
    size_t dollar = tmpl.find('$');
    if (dollar == std::string_view::npos)
      break;
    out += tmpl.substr(0, dollar);
    tmpl.remove_prefix(dollar + 1);
    if (!tmpl.empty() && tmpl[0] == '$') {
      out += '$';
      tmpl.remove_prefix(1);
      continue;
    }
    std::string_view rest = tmpl;
    bool brace = !rest.empty() && rest[0] == '{';
    if (brace)
      rest.remove_prefix(1);
    size_t len = 0;
    while (len < rest.size()) {
      Rune r = DecodeAt(rest, len);
      if (!IsLetter(r) && !IsDigit(r) && r.cp != '_')
        break;
      len += r.bytes.size();
    }
    if (len == 0 || (brace && (len >= rest.size() || rest[len] != '}'))) {
      out += '$';  // malformed: the '$' is literal
      continue;
    }
    std::string_view name = rest.substr(0, len);
    tmpl = rest.substr(len + (brace ? 1 : 0));
    if (name == "0")
      out += match;
  }
  out += tmpl;
  return out.size() <= max;
}

/// Go's Regexp.ReplaceAllString (empty matches right after a match are not
/// replaced; the search always advances by at least one character).
/// nullopt when the result would be longer than `max`.
std::optional<std::string> ReplaceAll(const RE2& re, std::string_view src, std::string_view tmpl, size_t max) {
  std::string out;
  size_t search = 0;
  size_t last_end = 0;
  while (search <= src.size()) {
    size_t begin = 0, end = 0;
    if (!Find(re, src, search, RE2::UNANCHORED, &begin, &end))
      break;
    out += src.substr(last_end, begin - last_end);
    if (end > last_end || begin == 0) {
      if (!ExpandTemplate(tmpl, src.substr(begin, end - begin), max, out))
        return std::nullopt;
    }
    if (out.size() > max)
      return std::nullopt;
    last_end = end;
    size_t width = search < src.size() ? DecodeAt(src, search).bytes.size() : 1;
    if (search + width > end)
      search += width;
    else if (search + 1 > end)
      search += 1;
    else
      search = end;
  }
  out += src.substr(last_end);
  if (out.size() > max)
    return std::nullopt;
  return out;
}

// ---------------------------------------------------------------------------

struct Processed {
  std::string word;
  std::vector<std::string> words;
};

class Lexer {
 public:
  Lexer(std::string_view src, const EnvLookup& env, const ExpandOptions& opts)
      : src_(src), env_(env), opts_(opts), raw_escapes_(opts.raw_escapes) {
    // Go's text/scanner, which BuildKit reads the word with, drops a
    // leading byte order mark.
    if (src_.substr(0, 3) == "\xEF\xBB\xBF")
      pos_ = 3;
  }

  Expected<Processed> Run() { return ProcessStopOn(kEof, raw_escapes_); }

  std::set<std::string> matched;
  std::set<std::string> unmatched;

 private:
  Rune Peek() const { return DecodeAt(src_, pos_); }
  Rune Next() {
    Rune r = DecodeAt(src_, pos_);
    pos_ += r.bytes.size();
    return r;
  }
  bool AtEof() const { return pos_ >= src_.size(); }

  std::optional<std::string> GetEnv(const std::string& name) {
    std::optional<std::string> v = env_ ? env_(name) : std::nullopt;
    (v ? matched : unmatched).insert(name);
    return v;
  }

  Expected<Processed> ProcessStopOn(int32_t stop, bool raw_escapes) {
    bool saved = raw_escapes_;
    raw_escapes_ = raw_escapes;
    auto result = ProcessStopOnImpl(stop);
    raw_escapes_ = saved;
    return result;
  }

  Expected<Processed> ProcessStopOnImpl(int32_t stop) {
    std::string result;
    WordSplitter words;
    while (!AtEof()) {
      Rune ch = Peek();
      if (stop != kEof && ch.cp == stop) {
        Next();
        return Processed{std::move(result), words.Take()};
      }
      if (ch.cp == '$' || (!opts_.skip_quotes && (ch.cp == '\'' || ch.cp == '"'))) {
        Expected<std::string> part = ch.cp == '$'    ? ProcessDollar()
                                     : ch.cp == '\'' ? ProcessSingleQuote()
                                                     : ProcessDoubleQuote();
        if (!part)
          return std::move(part).error();
        if (result.size() + part->size() > opts_.max_word)
          return TooLarge(opts_.max_word);
        result += *part;
        if (ch.cp == '$')
          words.AddString(*part);
        else
          words.AddRaw(*part);
        continue;
      }
      ch = Next();
      if (ch.cp == static_cast<unsigned char>(opts_.escape)) {
        if (raw_escapes_) {
          words.AddRaw(ch.bytes);
          result += ch.bytes;
        }
        ch = Next();
        if (ch.cp == kEof)
          break;  // a trailing escape token is dropped
        words.AddRaw(ch.bytes);
      } else {
        words.AddChar(ch);
      }
      result += ch.bytes;
    }
    if (stop != kEof)
      return Bad("unexpected end of statement while looking for matching " +
                 std::string(1, static_cast<char>(stop)));
    return Processed{std::move(result), words.Take()};
  }

  /// Consumes an opening quote: the start of the quoted text (the quote
  /// itself with raw_quotes).
  std::string OpenQuote() {
    Rune quote = Next();
    return opts_.raw_quotes ? std::string(quote.bytes) : std::string();
  }

  Expected<std::string> ProcessSingleQuote() {
    std::string result = OpenQuote();
    for (;;) {
      Rune ch = Next();
      if (ch.cp == kEof)
        return Bad("unexpected end of statement while looking for matching single-quote");
      result += ch.bytes;
      if (ch.cp == '\'') {
        if (!opts_.raw_quotes)
          result.pop_back();
        return result;
      }
    }
  }

  Expected<std::string> ProcessDoubleQuote() {
    std::string result = OpenQuote();
    for (;;) {
      Rune peek = Peek();
      if (peek.cp == kEof)
        return Bad("unexpected end of statement while looking for matching double-quote");
      if (peek.cp == '"') {
        Rune close = Next();
        if (opts_.raw_quotes)
          result += close.bytes;
        return result;
      }
      if (peek.cp == '$') {
        KILN_ASSIGN_OR_RETURN(std::string value, ProcessDollar());
        if (result.size() + value.size() > opts_.max_word)
          return TooLarge(opts_.max_word);
        result += value;
        continue;
      }
      Rune ch = Next();
      if (ch.cp == static_cast<unsigned char>(opts_.escape)) {
        if (raw_escapes_)
          result += ch.bytes;
        Rune after = Peek();
        if (after.cp == kEof)
          continue;  // an escape token at the end is dropped
        if (after.cp == '"' || after.cp == '$' ||
            after.cp == static_cast<unsigned char>(opts_.escape))
          ch = Next();
      }
      result += ch.bytes;
    }
  }

  /// A name: letters, digits and '_'; a leading digit takes all digits; one
  /// of the special parameters @ * # ? - $ ! 0.
  std::string ProcessName() {
    std::string name;
    while (!AtEof()) {
      Rune ch = Peek();
      if (name.empty() && IsDigit(ch)) {
        while (!AtEof() && IsDigit(Peek()))
          name += Next().bytes;
        return name;
      }
      if (name.empty() && IsSpecialParam(ch.cp))
        return std::string(Next().bytes);
      if (!IsLetter(ch) && !IsDigit(ch) && ch.cp != '_')
        break;
      name += Next().bytes;
    }
    return name;
  }

  Expected<std::string> ProcessDollar() {
    Next();  // '$'
    if (Peek().cp != '{') {
      std::string name = ProcessName();
      if (name.empty())
        return std::string("$");
      std::optional<std::string> value = GetEnv(name);
      if (!value && opts_.skip_unset)
        return "$" + name;
      return value.value_or("");
    }
    Next();  // '{'
    switch (Peek().cp) {
      case kEof:
        return Bad("syntax error: missing '}'");
      case '{': case '}': case ':':
        return Bad("syntax error: bad substitution");
      default:
        break;
    }
    std::string name = ProcessName();
    Rune ch = Next();
    if (ch.cp == kEof)
      return Bad("syntax error: missing '}'");
    std::string chs(ch.bytes);
    if (ch.cp == '}') {
      std::optional<std::string> value = GetEnv(name);
      if (!value && opts_.skip_unset)
        return "${" + name + "}";
      return value.value_or("");
    }
    if (ch.cp == '/')
      return ProcessReplace(name);
    bool null_is_unset = false;
    if (ch.cp == ':') {
      null_is_unset = true;
      ch = Next();
      chs += ch.bytes;
    }
    switch (ch.cp) {
      case '+': case '-': case '?': case '#': case '%':
        break;
      default:
        if (ch.cp == kEof)
          return Bad("syntax error: missing '}'");
        return Bad("unsupported modifier (" + chs + ") in substitution");
    }
    bool pattern = ch.cp == '#' || ch.cp == '%';
    if (null_is_unset && pattern)
      return Bad("unsupported modifier (" + chs + ") in substitution");
    auto processed = ProcessStopOn('}', pattern);
    if (!processed) {
      if (AtEof())
        return Bad("syntax error: missing '}'");
      return std::move(processed).error();
    }
    std::string word = std::move(processed->word);
    std::optional<std::string> value = GetEnv(name);
    if (!value && opts_.skip_unset)
      return "${" + name + chs + word + "}";
    bool empty = !value || (null_is_unset && value->empty());
    switch (ch.cp) {
      case '-':
        return empty ? word : *value;
      case '+':
        return empty ? std::string() : word;
      case '?':
        if (!value)
          return Bad(name + ": " + (word.empty() ? "is not allowed to be unset" : word));
        if (empty)
          return Bad(name + ": " + (word.empty() ? "is not allowed to be empty" : word));
        return *value;
      default: {  // '#' or '%'
        bool greedy = false;
        if (!word.empty() && static_cast<unsigned char>(word[0]) == ch.cp) {
          greedy = true;
          word.erase(0, 1);
        }
        std::string v = value.value_or("");
        return ch.cp == '%' ? TrimSuffix(word, v, greedy) : TrimPrefix(word, v, greedy);
      }
    }
  }

  /// ${name/pattern/replacement} and ${name//pattern/replacement}.
  Expected<std::string> ProcessReplace(const std::string& name) {
    bool replace_all = Peek().cp == '/';
    if (replace_all)
      Next();
    auto pattern = ProcessStopOn('/', true);
    if (!pattern) {
      if (AtEof())
        return Bad("syntax error: missing '/' in ${}");
      return std::move(pattern).error();
    }
    auto replacement = ProcessStopOn('}', true);
    if (!replacement) {
      if (AtEof())
        return Bad("syntax error: missing '}'");
      return std::move(replacement).error();
    }
    std::optional<std::string> value = GetEnv(name);
    if (!value && opts_.skip_unset)
      return "${" + name + (replace_all ? "//" : "/") + pattern->word + "/" + replacement->word +
             "}";
    KILN_ASSIGN_OR_RETURN(auto re, CompilePattern(pattern->word, true, false));
    std::string v = value.value_or("");
    if (replace_all) {
      auto replaced = ReplaceAll(*re, v, replacement->word, opts_.max_word);
      if (!replaced)
        return TooLarge(opts_.max_word);
      return std::move(*replaced);
    }
    size_t begin = 0, end = 0;
    if (!Find(*re, v, 0, RE2::UNANCHORED, &begin, &end))
      return v;
    if (v.size() - (end - begin) + replacement->word.size() > opts_.max_word)
      return TooLarge(opts_.max_word);
    return v.substr(0, begin) + replacement->word + v.substr(end);
  }

  std::string_view src_;
  size_t pos_ = 0;
  const EnvLookup& env_;
  ExpandOptions opts_;
  bool raw_escapes_;
};

}  // namespace

Expected<ExpandResult> ExpandWordWithMatches(std::string_view word, const EnvLookup& env,
                                             const ExpandOptions& opts) {
  Lexer lexer(word, env, opts);
  auto processed = lexer.Run();
  if (!processed)
    return Error(Errc::kInvalidInput,
                 "failed to process " + Quote(word) + ": " + processed.error().message());
  if (processed->word.size() > opts.max_word)
    return Error(Errc::kInvalidInput, "failed to process " + QuoteHead(word) + ": " + TooLarge(opts.max_word).message());
  if (opts.budget) {
    if (processed->word.size() > *opts.budget)
      return Error(Errc::kInvalidInput, "failed to process " + QuoteHead(word) +
                                            ": the expansion results and step environments of the file together are larger than " +
                                            SizeText(kMaxExpansionTotal));
    *opts.budget -= processed->word.size();
  }
  ExpandResult out;
  out.word = std::move(processed->word);
  out.words = std::move(processed->words);
  out.matched.assign(lexer.matched.begin(), lexer.matched.end());
  out.unmatched.assign(lexer.unmatched.begin(), lexer.unmatched.end());
  return out;
}

Expected<std::string> ExpandWord(std::string_view word, const EnvLookup& env,
                                 const ExpandOptions& opts) {
  KILN_ASSIGN_OR_RETURN(ExpandResult r, ExpandWordWithMatches(word, env, opts));
  return std::move(r.word);
}

Expected<std::vector<std::string>> ExpandWords(std::string_view text, const EnvLookup& env,
                                               const ExpandOptions& opts) {
  KILN_ASSIGN_OR_RETURN(ExpandResult r, ExpandWordWithMatches(text, env, opts));
  return std::move(r.words);
}

}  // namespace kiln::frontend
