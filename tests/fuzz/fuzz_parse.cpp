// libFuzzer target: the Containerfile parser. Parses the input; when it is
// accepted, dumps it and expands every argument and flag with a small
// environment (frontend/expand.h). Any crash, sanitizer report or assertion
// is a bug: bad input must give an error, never more.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "expand.h"
#include "kiln/containerfile.h"

namespace {

using kiln::frontend::Instruction;

void ExpandAll(const Instruction& inst, const kiln::frontend::EnvLookup& env,
               const kiln::frontend::ExpandOptions& opts) {
  for (const auto& arg : inst.args) {
    (void)kiln::frontend::ExpandWords(arg, env, opts);
    (void)kiln::frontend::ExpandWord(arg, env, opts);
  }
  for (const auto& flag : inst.flags)
    (void)kiln::frontend::ExpandWord(flag, env, opts);
  for (const auto& doc : inst.heredocs)
    if (doc.expand && doc.content.size() < 4096)
      (void)kiln::frontend::ExpandWord(doc.content, env, opts);
  for (const Instruction& sub : inst.sub)
    ExpandAll(sub, env, opts);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto file = kiln::frontend::ParseContainerfile(text);
  if (!file)
    return 0;
  (void)kiln::frontend::DumpAst(*file);
  kiln::frontend::Environment env;
  env.Set("A", "a");
  env.Set("EMPTY", "");
  env.Set("SPACED", " x  y ");
  env.Set("PATH", "/usr/bin:/bin");
  kiln::frontend::ExpandOptions opts;
  opts.escape = file->escape;
  auto lookup = env.Lookup();
  for (const Instruction& inst : file->instructions)
    ExpandAll(inst, lookup, opts);
  return 0;
}
