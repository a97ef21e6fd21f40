// kiln parse [--dump] FILE: checks a Containerfile; --dump prints BuildKit's
// AST dump. Exit 0, or 2 with "kiln: error: FILE:LINE: ..." (docs/cli.md).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/cli.h"
#include "kiln/containerfile.h"
#include "kiln/fs.h"
#include "kiln/log.h"

namespace kiln::cli {
namespace {

constexpr size_t kMaxContainerfileBytes = size_t(64) << 20;

struct ParseOptions {
  bool dump = false;
  std::string file;
};

int RunParse(const ParseOptions& opts) {
  bool from_stdin = opts.file == "-";
  Expected<std::string> text = from_stdin ? ReadAll(STDIN_FILENO, kMaxContainerfileBytes)
                                          : ReadFile(opts.file, kMaxContainerfileBytes);
  if (!text)
    return ReportError(std::move(text).error().WithContext("reading " + opts.file));
  std::string name = from_stdin ? "<stdin>" : opts.file;
  auto parsed = frontend::ParseContainerfile(*text, name);
  if (!parsed)
    return ReportError(parsed.error());
  for (const frontend::Warning& w : parsed->warnings)
    LogWarn(name + ":" + std::to_string(w.line) + ": " + w.message);
  if (opts.dump) {
    std::string out = frontend::DumpAst(*parsed);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

void AddParseCommand(CLI::App& app, Context& ctx) {
  auto opts = std::make_shared<ParseOptions>();
  auto* cmd = app.add_subcommand("parse", "check a Containerfile's syntax");
  cmd->add_flag("--dump", opts->dump, "print the syntax tree (BuildKit's dump format)");
  cmd->add_option("FILE", opts->file, "the Containerfile, or - for standard input")->required();
  SetAction(cmd, ctx, [opts] { return RunParse(*opts); }, kNotFoundFails);
}

}  // namespace kiln::cli
