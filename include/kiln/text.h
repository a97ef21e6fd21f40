// Small text helpers that several modules need the same way: lines of a
// text, Go durations, UTF-8 encoding, timestamps with nanoseconds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"

namespace kiln {

/// The lines of `text`, split at '\n' (not included); a last line without
/// one counts, an empty text has none. Views into `text`.
std::vector<std::string_view> SplitLines(std::string_view text);

/// Go's time.ParseDuration ("300ms", "1.5h", "2h45m", "-1s", "0"), in
/// nanoseconds; kInvalidInput `invalid duration "T"` (or `missing unit in
/// duration "T"`).
Expected<int64_t> ParseGoDuration(std::string_view text);

/// Appends the UTF-8 bytes of the code point `cp` (U+FFFD for a surrogate or
/// a value above U+10FFFF).
void AppendUtf8(std::string& out, char32_t cp);

/// `unix_ns` with strftime's `format` (UTC, or local time when `local`), then
/// the fraction of the second as Go's RFC3339Nano writes it: ".5", ".000123",
/// nothing for a whole second.
std::string FormatTimeNanos(int64_t unix_ns, const char* format, bool local = false);

/// The character of a C/Go backslash escape: 'n' -> '\n', also t r a b f v
/// and \\ " '; '\0' for any other character.
char UnescapeChar(char e);

/// The C/Go escape of a control character: '\n' -> "\\n", also \a \b \f \r
/// \t \v; nullptr for any other character.
const char* EscapeControl(char32_t c);

/// `s` between two `quote` characters, with a backslash before each quote
/// and backslash in it (Go's %q for plain text; fish's single quotes).
std::string QuoteWith(std::string_view s, char quote);

/// `word` as one word for a POSIX shell: as is when it has only characters
/// no shell treats specially (letters, digits and _-./=:,@%+), else between
/// single quotes with each ' written as '\''.
std::string ShellQuote(std::string_view word);

}  // namespace kiln
