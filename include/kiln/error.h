// Errors as values: Errc, Error, Expected<T>, Status.
//
// Recoverable errors (bad input, the environment, the network, corrupt data)
// are returned, never thrown. Programmatic errors use assert(). See
// docs/hacking.md, "Errors". The spelling follows std::expected so that a
// later switch to C++23 changes little.
#pragma once

#include <cassert>
#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kiln {

enum class Errc {
  kInvalidInput,  // bad flag, bad Containerfile, bad reference: exit 2
  kNotFound,      // image, stage, file or blob does not exist
  kIo,            // filesystem or syscall failure
  kNetwork,       // connection, TLS, HTTP
  kAuth,          // registry refused the credentials
  kCorrupt,       // digest mismatch, bad JSON, bad archive
  kSandbox,       // sandbox setup failed, or a step exited non-zero
  kUnsupported,   // valid but not implemented / not possible on this host
  kCancelled,     // another step failed first
  kFailed,        // the operation failed (RUN exited non-zero, push refused)
};

/// Name of an error code, for logs and JSON progress ("invalid-input", ...).
const char* ErrcName(Errc code);

class Error {
 public:
  Error(Errc code, std::string message, int sys_errno = 0)
      : code_(code), message_(std::move(message)), sys_errno_(sys_errno) {}

  /// "what: strerror(err)", code kIo (kNotFound for ENOENT).
  static Error FromErrno(std::string_view what, int err = errno);

  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  int sys_errno() const { return sys_errno_; }

  /// Prefixes the message: "what: <message>". Keeps code and errno.
  Error WithContext(std::string_view what) && {
    message_ = std::string(what) + ": " + message_;
    return std::move(*this);
  }
  Error WithContext(std::string_view what) const& {
    Error copy = *this;
    return std::move(copy).WithContext(what);
  }

 private:
  Errc code_;
  std::string message_;
  int sys_errno_;
};

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Expected(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(v_); }
  const T& value() const& { assert(has_value()); return std::get<0>(v_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { assert(!has_value()); return std::get<1>(v_); }
  const Error& error() const& { assert(!has_value()); return std::get<1>(v_); }
  Error&& error() && { assert(!has_value()); return std::get<1>(std::move(v_)); }

  T value_or(T other) const& { return has_value() ? value() : std::move(other); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : e_(std::move(error)) {}  // NOLINT: implicit on purpose

  bool has_value() const { return !e_.has_value(); }
  explicit operator bool() const { return has_value(); }
  void value() const { assert(has_value()); }

  Error& error() & { assert(e_); return *e_; }
  const Error& error() const& { assert(e_); return *e_; }
  Error&& error() && { assert(e_); return std::move(*e_); }

 private:
  std::optional<Error> e_;
};

using Status = Expected<void>;

inline Status Ok() { return Status(); }

/// Exit status the CLI uses for an error code (see ../docs/cli.md):
/// 2 for invalid input, 125 for sandbox/store set-up, 1 otherwise.
int ExitCodeFor(Errc code);

}  // namespace kiln

/// Propagates an error from a Status or Expected expression:
///   KILN_TRY(WriteAll(fd, data));
#define KILN_TRY(expr)                                   \
  do {                                                   \
    auto&& kiln_try_result_ = (expr);                    \
    if (!kiln_try_result_)                               \
      return std::move(kiln_try_result_).error();        \
  } while (0)

/// Assigns the value of an Expected expression or returns its error:
///   KILN_ASSIGN_OR_RETURN(auto fd, OpenFile(path));
#define KILN_CONCAT_INNER_(a, b) a##b
#define KILN_CONCAT_(a, b) KILN_CONCAT_INNER_(a, b)
#define KILN_ASSIGN_OR_RETURN(lhs, expr)                                  \
  auto KILN_CONCAT_(kiln_aor_, __LINE__) = (expr);                        \
  if (!KILN_CONCAT_(kiln_aor_, __LINE__))                                 \
    return std::move(KILN_CONCAT_(kiln_aor_, __LINE__)).error();          \
  lhs = std::move(KILN_CONCAT_(kiln_aor_, __LINE__)).value()

#define KILN_UNREACHABLE(msg) (assert(false && (msg)), __builtin_unreachable())
