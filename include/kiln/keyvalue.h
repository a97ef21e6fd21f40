// KEY=VALUE items as flags and small settings files write them (--label,
// --build-arg, --annotation, -o, --secret id=a,src=b, --label-file lines):
// the one parser of the project, so that every command takes the same
// spelling and says the same thing about a bad one.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/error.h"

namespace kiln {

/// One item: "K=V" is (K, V); "K" alone is (K, "") as podman's `--label K`,
/// unless `value_required`. kInvalidInput naming `what` (the flag, or
/// "label (FILE:LINE)") and the item for "", "=V" (empty key) and a missing
/// required value.
Expected<std::pair<std::string, std::string>> ParseKeyValue(std::string_view item, std::string_view what,
                                                            bool value_required = false);

/// Every item into `out` (a later key replaces an earlier one), as ParseKeyValue.
Status ParseKeyValues(const std::vector<std::string>& items, std::string_view what,
                      std::map<std::string, std::string>* out, bool value_required = false);

/// "a=b,c=d" (BuildKit's --secret, --output attributes): empty parts are
/// skipped, every other part needs a '=' and a key; kInvalidInput naming
/// `what`, the text and the part.
Expected<std::map<std::string, std::string>> ParseKeyValueList(std::string_view text, std::string_view what);

/// The non-empty parts of a `sep`-separated list ("a,,b," -> a, b), as
/// --platform, --no-cache-filter and the ssh paths are written.
std::vector<std::string> SplitList(std::string_view text, char sep = ',');

/// The lines of a settings file (--env-file, --label-file): `on_line` gets
/// every line that is not blank or a '#' comment, without leading blanks and
/// trailing blanks or '\r', with its 1-based number; its first error stops
/// the walk and is returned.
Status ForEachSettingLine(std::string_view text, const std::function<Status(std::string_view line, int lineno)>& on_line);

}  // namespace kiln
