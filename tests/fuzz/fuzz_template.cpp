// libFuzzer target: the Go-template engine (include/kiln/format.h). The
// input is a template, optionally followed by a NUL byte and JSON data (else
// a fixed container-like object is used). It is parsed, run on the data, run
// as a table header row, and rendered as a podman list (table and plain).
// Any crash, sanitizer report, hang or unbounded output is a bug: a bad
// template must give an error, never more.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kiln/format.h"

namespace {

const nlohmann::json& Fixed() {
  static const nlohmann::json d = nlohmann::json::parse(R"({
    "ID": "0123456789ab", "Names": ["web", "front"], "State": {"Status": "running", "Pid": 42},
    "Labels": {"a": "b", "c.d": ""}, "Ports": [], "Size": 2131046, "Ratio": 1.5, "Null": null,
    "Mounts": [{"Source": "/a"}, {"Source": "/b"}], "Neg": -7, "Big": 18446744073709551615})");
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view text = in;
  nlohmann::json parsed;
  const nlohmann::json* value = &Fixed();
  if (size_t nul = in.find('\0'); nul != std::string_view::npos) {
    text = in.substr(0, nul);
    parsed = nlohmann::json::parse(in.substr(nul + 1), nullptr, false);
    if (!parsed.is_discarded())
      value = &parsed;
  }
  kiln::format::Options options;
  options.name = "fuzz";
  options.max_output = 1 << 20;
  options.max_steps = 200000;
  auto tmpl = kiln::format::Template::Parse(text, options);
  if (tmpl) {
    (void)tmpl->Execute(*value);
    (void)tmpl->ExecuteHeaders({{"ID", "CONTAINER ID"}});
  }
  kiln::format::ListOptions list;
  list.default_format = "table {{.ID}}\t{{.Names}}";
  list.template_options = options;
  std::vector<nlohmann::json> rows{*value, Fixed()};
  (void)kiln::format::RenderList(text, rows, list);
  (void)kiln::format::RenderOne(text, *value, options);
  return 0;
}
