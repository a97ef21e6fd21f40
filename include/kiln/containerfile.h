// The Containerfile language, the frontend module's public interface: what
// the CLI and the engine need. Parse text into a syntax tree, compile it with
// build options into the build graph (kiln/graph.h), and match
// .containerignore patterns. Pure: no syscalls, no store, no network; base
// images are described by the injected resolve_base, never fetched here.
// docs/containerfile.md (the language), docs/build-graph.md (the graph),
// docs/ignore-and-expansion.md (ignore files).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"
#include "kiln/graph.h"

namespace kiln::frontend {

// ---------------------------------------------------------------------------
// Syntax tree (BuildKit's parser.Node, flattened to one struct per
// instruction). Produced by ParseContainerfile(); pure data.

/// A heredoc attached to RUN/COPY/ADD: `<<EOF` ... `EOF`.
struct Heredoc {
  std::string name;       // the delimiter word, quotes removed ("EOF")
  std::string content;    // body, each line with its '\n'; leading tabs kept even with <<-
  bool expand = true;     // false when any part of the delimiter was quoted
  bool chomp = false;     // <<-: strip leading tabs (done by the compiler, as BuildKit)
  int file_descriptor = 0;  // the N of N<<EOF, 0 when absent
};

/// One instruction. For ONBUILD, `sub` holds the nested instruction (0 or 1).
struct Instruction {
  std::string keyword;             // lower-cased: "from", "run", ...
  std::string original;            // the logical line as written (continuations joined)
  std::vector<std::string> flags;  // "--from=builder", quotes and escapes processed
  std::vector<std::string> args;   // argument nodes, as in BuildKit's dump
  bool json_form = false;          // args came from a JSON array (exec form)
  std::vector<Heredoc> heredocs;
  std::vector<Instruction> sub;    // ONBUILD's nested instruction
  int start_line = 0;              // 1-based physical lines
  int end_line = 0;
};

struct Warning {
  int line = 0;
  std::string message;
};

struct File {
  std::string filename;            // for messages: "Containerfile"
  char escape = '\\';              // from `# escape=`
  std::string syntax;              // `# syntax=` value, "" when absent
  std::string check;               // `# check=` value, "" when absent
  std::vector<Instruction> instructions;
  std::vector<Warning> warnings;   // e.g. empty continuation lines
  int start_line = 0;              // first and last line of any instruction
  int end_line = 0;
};

/// Parses Containerfile text. Errors are kInvalidInput with
/// "<filename>:<line>: <what>" messages.
Expected<File> ParseContainerfile(std::string_view text, std::string_view filename = "Containerfile");

/// BuildKit's Node.Dump() of the whole file, one "(...)\n" line per
/// instruction (the exact format of the conformance `result` files).
std::string DumpAst(const File& file);


// ---------------------------------------------------------------------------
// The compiler: File + build options -> BuildGraph (BuildKit's dockerfile2llb
// and instructions packages).

/// Describes a base image for FROM. Called only for stages reachable from
/// the target, once per (reference, platform). An error fails the compile.
using ResolveBaseFn = std::function<Expected<BaseImageInfo>(const std::string& ref, const Platform& platform)>;

struct CompileOptions {
  std::map<std::string, std::string> build_args;  // --build-arg K=V (K alone: the CLI looks K up in its env)
  std::string target;                             // --target, "" = the last stage
  Platform target_platform;                       // empty = linux/amd64
  Platform build_platform;                        // empty = target_platform
  /// --build-context NAME=VALUE: a value starting with docker-image:// is an
  /// image, anything else a local directory.
  std::map<std::string, std::string> build_contexts;
  ResolveBaseFn resolve_base;                     // null = every base has an empty config
};

/// Compiles the file. Errors are kInvalidInput ("<file>:<line>: <what>"),
/// or whatever resolve_base returned, with the FROM location added.
Expected<BuildGraph> Compile(const File& file, const CompileOptions& options);

/// Validates and normalizes an image reference the way Docker does for FROM
/// ("alpine" -> "docker.io/library/alpine:latest"). kInvalidInput if invalid.
Expected<std::string> NormalizeImageReference(std::string_view ref);

// ---------------------------------------------------------------------------
// .containerignore / .dockerignore: reading and matching with
// moby/patternmatcher semantics (last match wins, `!` re-includes, a path
// matches if it or any parent matches, `**`), compiled to re2.

/// Reads ignore-file text into cleaned patterns (comments and blanks
/// dropped, paths cleaned, leading '/' stripped, '!' kept).
std::vector<std::string> ReadIgnoreFile(std::string_view text);

/// Compiled patterns. Expensive to build; share it, don't copy it.
class IgnoreMatcher {
 public:
  /// kInvalidInput for a malformed pattern (names the pattern).
  static Expected<std::shared_ptr<const IgnoreMatcher>> Create(const std::vector<std::string>& patterns);
  ~IgnoreMatcher();
  IgnoreMatcher(const IgnoreMatcher&) = delete;
  IgnoreMatcher& operator=(const IgnoreMatcher&) = delete;

  /// True if the context-relative, '/'-separated path is excluded.
  bool Matches(std::string_view path) const;
  /// True if some exception ('!') pattern could re-include something below
  /// `dir`, so an excluded directory must still be walked.
  bool HasExceptionsUnder(std::string_view dir) const;
  bool empty() const;

 private:
  IgnoreMatcher();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::frontend
