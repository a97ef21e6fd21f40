// Text helpers of the Containerfile parser that reproduce Go's behaviour
// byte for byte (BuildKit's parser is written in Go): UTF-8 decoding with
// U+FFFD for bad bytes, unicode.IsSpace / unicode.IsPrint, encoding/json
// string arrays, and the three small word splitters of the parser. Internal
// to the frontend; the public API is ast.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::frontend::lex {

/// One decoded code point. An invalid or truncated sequence decodes as
/// U+FFFD with width 1, as Go's utf8.DecodeRune.
struct Rune {
  char32_t value = 0;
  int width = 0;
};

/// Decodes the code point at s[pos] (pos < s.size()).
Rune DecodeRune(std::string_view s, size_t pos);

/// Appends the UTF-8 encoding of `r` (U+FFFD for surrogates and values
/// above U+10FFFF, as Go's utf8.EncodeRune).
void AppendRune(std::string& out, char32_t r);

/// Go's unicode.IsSpace.
bool IsSpace(char32_t r);

/// Go's unicode.IsPrint (Unicode 15.0 tables): letters, marks, numbers,
/// punctuation, symbols and U+0020.
bool IsPrint(char32_t r);

/// True for the bytes of Go's `[\t\v\f\r ]` (BuildKit's reWhitespace).
inline bool IsBlankByte(char c) {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/// Go's strings.TrimLeftFunc(s, unicode.IsSpace) and strings.TrimSpace.
std::string_view TrimLeftSpace(std::string_view s);
std::string_view TrimSpace(std::string_view s);

/// Splits on runs of `[\t\v\f\r ]` (Go regexp Split with n = -1, or n = 2
/// when `max_parts` is 2). An empty input gives one empty part.
std::vector<std::string> SplitBlank(std::string_view s, int max_parts = -1);

/// Outcome of ParseJsonStringArray.
enum class JsonArray {
  kStrings,         // a valid JSON array of strings: `out` holds them
  kNotJson,         // not a (single, valid) JSON array: use the shell form
  kNotStringArray,  // valid JSON array with a non-string element: an error
};

/// Decodes `text` (leading Unicode whitespace ignored) as a strict JSON
/// array, as Go's json.Unmarshal into []interface{}: invalid UTF-8 inside
/// strings becomes U+FFFD, nesting deeper than 10000 is a syntax error.
JsonArray ParseJsonStringArray(std::string_view text, std::vector<std::string>* out);

/// BuildKit's parseWords (ENV, LABEL, ARG): splits on Unicode whitespace
/// outside quotes, keeping quotes and escape tokens in the words.
std::vector<std::string> SplitWordsKeepQuotes(std::string_view text, char escape);

/// BuildKit's extractBuilderFlags: the leading `--flag` words of `text`
/// (quotes removed, the escape token makes the next character literal, a
/// bare `--` ends the flags) and the remaining text.
void ExtractFlags(std::string_view text, char escape, std::vector<std::string>* flags,
                  std::string_view* rest);

/// A shell-style word split as BuildKit's shell lexer does it when looking
/// for heredocs (escape `\`, no variables set, `$` kept as written):
/// whitespace outside quotes separates words, quotes are removed unless
/// `raw_quotes`, escapes are processed unless `raw_escapes`; empty words are
/// dropped. nullopt for an unterminated quote.
std::optional<std::vector<std::string>> ShellWords(std::string_view text, bool raw_quotes,
                                                   bool raw_escapes);

/// BuildKit's suggest.Search: the option closest to a misspelt `word`
/// (Levenshtein distance below 3, ignoring ASCII case), else "". For the
/// "did you mean X?" hint of unknown instructions, flags and mount keys.
std::string Suggest(std::string_view word, const std::vector<std::string_view>& options);

}  // namespace kiln::frontend::lex
