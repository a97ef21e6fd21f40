// The Containerfile syntax tree (BuildKit's parser.Node, flattened to one
// struct per instruction). Produced by ParseContainerfile(); consumed by the
// compiler (compile.h). Pure data: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"

namespace kiln::frontend {

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

/// Go strconv.Quote of a byte string.
std::string GoQuote(std::string_view s);

}  // namespace kiln::frontend
