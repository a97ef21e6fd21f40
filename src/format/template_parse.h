// The template engine's lexer and parser (src/format/template_lex.cpp,
// template_parse.cpp) and the parse tree the executor (template.cpp) walks.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "format/internal.h"

namespace kiln::format::internal {

// ---------------------------------------------------------------- tokens

enum class Tok {
  kText, kLeft, kRight, kField, kVariable, kDot, kString, kNumber, kBool, kNil, kIdent, kKeyword,
  kPipe, kLParen, kRParen, kComma, kDeclare, kAssign, kSpace, kEof,
};

struct Token {
  Tok kind;
  size_t pos;
  std::string text;  // the source text (the value for kText, the decoded string for kString)
};

struct SyntaxError {
  size_t pos;
  std::string message;
};

/// Tokenizes `text` (ending with kEof), or fails with the position and reason.
bool Lex(std::string_view text, std::vector<Token>& out, SyntaxError& err);

// ---------------------------------------------------------------- parse tree

struct Pipe;

enum class ArgKind { kDot, kField, kVariable, kParen, kLiteral, kNil, kIdent };

struct Arg {
  ArgKind kind;
  size_t pos;
  std::string text;                 // source text for messages ("<.Foo>")
  std::string name;                 // variable ("$x") or function name
  std::vector<std::string> fields;  // field chain after the term
  Json literal;
  std::shared_ptr<Pipe> pipe;       // kParen
};

struct Command {
  size_t pos;
  std::vector<Arg> args;
};

struct Pipe {
  size_t pos;
  std::vector<std::string> decl;
  bool assign = false;  // = rather than :=
  std::vector<Command> cmds;
};

enum class NodeKind { kText, kAction, kIf, kRange, kWith, kBreak, kContinue };

struct Node {
  NodeKind kind;
  size_t pos;
  std::string text;
  std::shared_ptr<Pipe> pipe;
  std::vector<Node> list, else_list;
};

/// Parses the tokens into the node list, or fails with the position and reason.
bool ParseTokens(const std::vector<Token>& tokens, std::vector<Node>& out, SyntaxError& err);

}  // namespace kiln::format::internal
