// Instruction-level helpers of the compiler: flag parsing with per-
// instruction validation, RUN --mount specs, COPY --chmod, EXPOSE port
// specs, HEALTHCHECK durations, STOPSIGNAL names. Pure functions, each
// returning kInvalidInput with a message the caller prefixes with
// "<file>:<line>: ".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/containerfile.h"
#include "kiln/error.h"
#include "kiln/text.h"  // ParseGoDuration

namespace kiln::frontend {

enum class FlagType { kString, kBool, kList };

struct FlagSpec {
  const char* name;  // without "--"
  FlagType type;
};

/// Parsed flags of one instruction. Bool flags hold "true"/"false".
struct Flags {
  std::map<std::string, std::vector<std::string>> values;

  bool Has(const std::string& name) const { return values.count(name) != 0; }
  /// Last value of a string flag, "" when absent.
  std::string Get(const std::string& name) const;
  bool GetBool(const std::string& name) const { return Get(name) == "true"; }
  std::vector<std::string> GetList(const std::string& name) const;
};

/// The flags each instruction accepts (keyword lower-case); empty for
/// instructions without flags.
const std::vector<FlagSpec>& FlagsFor(std::string_view keyword);

/// Parses `raw` ("--from=x", "--link") against the instruction's specs.
/// Errors: "unknown flag --foo for COPY", "flag --from for COPY needs a
/// value", "flag --from for COPY was given more than once", "flag --link for
/// COPY: invalid boolean \"x\"".
Expected<Flags> ParseFlags(std::string_view keyword, const std::vector<std::string>& raw);

/// Go strconv.ParseBool.
bool ParseGoBool(std::string_view text, bool* out);

/// Splits a --mount value the way encoding/csv reads one record, then each
/// field at its first '=' ("ro" alone gives {"ro", ""} with has_value false).
struct MountField {
  std::string key;
  std::string value;
  bool has_value = false;
};
Expected<std::vector<MountField>> SplitMountFields(std::string_view text);

/// Validates COPY/ADD --chmod: octal up to 07777 or symbolic
/// ([ugoa]*[-+=][rwxXst]*|[ugo], comma separated).
Status ValidateChmod(std::string_view chmod);

/// docker/go-units RAMInBytes ("64m", "1g", "1024").
Expected<int64_t> ParseByteSize(std::string_view text);

/// EXPOSE port spec -> normalized "port/proto" entries (ranges expanded,
/// proto lower-cased, tcp by default).
Expected<std::vector<std::string>> ParseExposePort(std::string_view spec);

/// STOPSIGNAL: a number 1..64, or a name with or without SIG
/// (RTMIN+n / RTMAX-n included). Returns the value as written when valid.
Status ValidateSignal(std::string_view signal);

/// Strips leading tabs from every line (heredoc <<-).
std::string ChompHeredoc(std::string_view content);

/// If `word` is a heredoc marker ("<<EOF", "<<-'EOF'", "3<<\"EOF\""), its
/// delimiter name; "" otherwise.
std::string HeredocMarkerName(std::string_view word);

/// Go's %q of a []string, as BuildKit writes CMD/ENTRYPOINT history:
/// ["/bin/sh" "-c" "echo hi"].
std::string GoQuoteList(const std::vector<std::string>& list);

}  // namespace kiln::frontend
