// Internals of the template engine: values, the parse tree, Go's value
// printing and fmt.Sprintf.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/error.h"
#include "kiln/format.h"

namespace kiln::format::internal {

using Json = nlohmann::json;

/// A value during execution: a JSON value (borrowed from the data or owned),
/// or Go's invalid value ("<no value>", a missing map key).
struct Value {
  const Json* ptr = nullptr;
  std::shared_ptr<const Json> own;
  bool is_map = false;    // an object that is a Go map (missing keys are <no value>)
  std::string type;       // Go type name of a struct-like object, for messages
  bool header = false;    // a header row's value: its fields are their headers

  static Value Missing() { return Value(); }
  static Value Of(Json j) {
    Value v;
    v.own = std::make_shared<const Json>(std::move(j));
    v.ptr = v.own.get();
    return v;
  }
  static Value Ref(const Json& j, std::shared_ptr<const Json> keep = nullptr) {
    Value v;
    v.own = std::move(keep);
    v.ptr = &j;
    return v;
  }
  bool missing() const { return ptr == nullptr; }
  const Json& j() const { return *ptr; }
  /// A value inside this one, keeping its owner alive.
  Value Child(const Json& c) const { return Ref(c, own); }
};

/// Go's type name of a value, for messages ("string", "int", "[]string").
std::string GoTypeName(const Value& v);
/// fmt's %v of a value: strings verbatim, [a b], map[k:v], <nil>, <no value>.
std::string GoPrint(const Value& v);
std::string GoPrintJson(const Json& j);
/// Go's strconv.FormatFloat(f, 'g', -1, 64) with %v's exponent rule.
std::string GoFloat(double f);
/// fmt.Sprintf with Go's verbs (%v %s %d %q %x %X %o %b %c %f %e %g %t %%).
std::string GoSprintf(std::string_view format, const std::vector<Value>& args);
/// strconv.Quote for the printable ASCII and UTF-8 cases.
std::string GoQuote(std::string_view s);

}  // namespace kiln::format::internal
