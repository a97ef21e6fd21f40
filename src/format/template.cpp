// The Go text/template engine over JSON values: the executor and the public
// Template (the lexer and parser: template_lex.cpp, template_parse.cpp).
// Follows Go's text/template (lexer, parse and exec packages) closely enough
// that the templates podman and docker users write behave the same; what it
// leaves out (define/template/block, methods, html/js) is refused with a
// message naming the position (docs/format.md).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "format/internal.h"
#include "format/template_parse.h"
#include "kiln/format.h"

namespace kiln::format {

using internal::Arg;
using internal::ArgKind;
using internal::Command;
using internal::GoPrint;
using internal::GoSprintf;
using internal::GoTypeName;
using internal::Json;
using internal::Node;
using internal::NodeKind;
using internal::Pipe;
using internal::Value;

struct Template::Impl {
  std::string text;
  Options options;
  std::vector<Node> root;
};

namespace {

// ---------------------------------------------------------------- execution

struct ExecError {
  size_t pos;
  std::string at;  // the node's text, for "at <...>"
  std::string message;
};

enum class Flow { kNormal, kBreak, kContinue };

bool Truth(const Value& v) {
  if (v.missing())
    return false;
  const Json& j = v.j();
  switch (j.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return j.get<bool>();
    case Json::value_t::number_integer: return j.get<long long>() != 0;
    case Json::value_t::number_unsigned: return j.get<unsigned long long>() != 0;
    case Json::value_t::number_float: return j.get<double>() != 0;
    case Json::value_t::string: return !j.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object: return !j.empty();
    default: return false;
  }
}

class Exec {
 public:
  Exec(const Template::Impl& t, const std::map<std::string, std::string>* headers) : t_(t), headers_(headers) {}

  bool Run(const Value& root, std::string& out, ExecError& err) {
    out_ = &out;
    vars_ = {{"$", root}};
    Flow flow = Flow::kNormal;
    return Walk(root, t_.root, flow, err);
  }

 private:
  // Counts the work: an empty {{range 1000000000000}} prints nothing but
  // would run for hours.
  bool Step(size_t pos, ExecError& err) {
    if (++steps_ <= t_.options.max_steps)
      return true;
    err = {pos, "", "more than " + std::to_string(t_.options.max_steps) + " steps"};
    return false;
  }

  bool Emit(std::string_view s, size_t pos, ExecError& err) {
    if (out_->size() + s.size() > t_.options.max_output) {
      err = {pos, "", "output larger than " + std::to_string(t_.options.max_output) + " bytes"};
      return false;
    }
    out_->append(s);
    return true;
  }

  bool Walk(const Value& dot, const std::vector<Node>& list, Flow& flow, ExecError& err) {
    for (const Node& n : list) {
      if (!WalkNode(dot, n, flow, err))
        return false;
      if (flow != Flow::kNormal)
        return true;
    }
    return true;
  }

  bool WalkNode(const Value& dot, const Node& n, Flow& flow, ExecError& err) {
    if (!Step(n.pos, err))
      return false;
    switch (n.kind) {
      case NodeKind::kText:
        return Emit(n.text, n.pos, err);
      case NodeKind::kBreak:
        flow = Flow::kBreak;
        return true;
      case NodeKind::kContinue:
        flow = Flow::kContinue;
        return true;
      case NodeKind::kAction: {
        Value v;
        if (!EvalPipe(dot, *n.pipe, v, err)) {
          if (!headers_)
            return false;
          // A header row runs the template on the headers, as podman does;
          // where that fails (join of a header string) it shows the header
          // of the first field the action names.
          std::string h;
          if (!HeaderOf(*n.pipe, h))
            h.clear();
          v = Value::Of(h);
          if (!n.pipe->decl.empty())
            for (const std::string& name : n.pipe->decl)
              vars_.push_back({name, v});
        }
        if (n.pipe->decl.empty())
          return Emit(GoPrint(v), n.pos, err);
        return true;
      }
      case NodeKind::kIf:
      case NodeKind::kWith: {
        size_t scope = vars_.size();
        bool ok;
        Value v;
        if (!EvalPipe(dot, *n.pipe, v, err)) {
          if (!headers_)
            return false;
          ok = Walk(dot, n.list, flow, err);  // a header row: the body once
        } else if (Truth(v)) {
          ok = Walk(n.kind == NodeKind::kWith ? v : dot, n.list, flow, err);
        } else {
          ok = Walk(dot, n.else_list, flow, err);
        }
        vars_.resize(scope);
        return ok;
      }
      case NodeKind::kRange:
        return WalkRange(dot, n, flow, err);
    }
    return true;
  }

  bool WalkRange(const Value& dot, const Node& n, Flow& flow, ExecError& err) {
    size_t scope = vars_.size();
    if (headers_) {  // a header row renders the body once, over the headers
      for (const std::string& name : n.pipe->decl)
        vars_.push_back({name, dot});
      bool ok = Walk(dot, n.list, flow, err);
      flow = Flow::kNormal;
      vars_.resize(scope);
      return ok;
    }
    // Evaluate without declaring: the range variables take each element.
    Pipe p = *n.pipe;
    std::vector<std::string> decl = p.decl;
    p.decl.clear();
    Value v;
    if (!EvalPipe(dot, p, v, err))
      return false;
    auto one = [&](const Value& key, const Value& elem) -> bool {
      if (!Step(n.pos, err))
        return false;
      vars_.resize(scope);
      if (decl.size() == 1) {
        vars_.push_back({decl[0], elem});
      } else if (decl.size() == 2) {
        vars_.push_back({decl[0], key});
        vars_.push_back({decl[1], elem});
      }
      Flow f = Flow::kNormal;
      if (!Walk(elem, n.list, f, err))
        return false;
      if (f == Flow::kBreak) {
        stop_ = true;
      }
      return true;
    };
    stop_ = false;
    bool any = false;
    if (!v.missing()) {
      const Json& j = v.j();
      if (j.is_array()) {
        for (size_t i = 0; i < j.size() && !stop_; ++i) {
          any = true;
          if (!one(Value::Of(static_cast<long long>(i)), v.Child(j[i])))
            return false;
        }
      } else if (j.is_object()) {
        for (auto it = j.begin(); it != j.end() && !stop_; ++it) {
          any = true;
          if (!one(Value::Of(it.key()), v.Child(it.value())))
            return false;
        }
      } else if (j.is_number_integer()) {
        long long count = j.is_number_unsigned() ? static_cast<long long>(std::min<unsigned long long>(
                                                       j.get<unsigned long long>(), 1ULL << 62))
                                                 : j.get<long long>();
        if (decl.size() == 2) {
          err = {n.pos, "", "can't use two variables ranging over an integer"};
          return false;
        }
        for (long long i = 0; i < count && !stop_; ++i) {
          any = true;
          if (!one(Value::Of(i), Value::Of(i)))
            return false;
        }
      } else if (!j.is_null()) {
        err = {n.pos, "", "range can't iterate over " + GoPrint(v)};
        return false;
      }
    }
    stop_ = false;
    vars_.resize(scope);
    if (!any)
      return Walk(dot, n.else_list, flow, err);
    return true;
  }

  // The header an action prints in a table's header row: that of the first
  // field it names; false when it names none (then it runs as usual).
  bool HeaderOf(const Pipe& p, std::string& h) {
    if (!p.decl.empty())
      return false;
    for (const Command& c : p.cmds)
      for (const Arg& a : c.args) {
        if (!a.fields.empty()) {
          const std::string& f = a.fields.back();
          auto it = headers_->find(f);
          h = it != headers_->end() ? it->second : HeaderFor(f);
          return true;
        }
        if (a.kind == ArgKind::kParen && HeaderOf(*a.pipe, h))
          return true;
      }
    for (const Command& c : p.cmds)
      for (const Arg& a : c.args)
        if (a.kind == ArgKind::kDot) {
          h = "";
          return true;
        }
    return false;
  }

  bool EvalPipe(const Value& dot, const Pipe& p, Value& result, ExecError& err) {
    bool have = false;
    Value final_value;
    for (const Command& c : p.cmds) {
      Value v;
      if (!EvalCommand(dot, c, have ? &final_value : nullptr, v, err))
        return false;
      final_value = std::move(v);
      have = true;
    }
    result = final_value;
    for (const std::string& name : p.decl) {
      if (p.assign) {
        for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
          if (it->first == name) {
            it->second = result;
            break;
          }
      } else {
        vars_.push_back({name, result});
      }
    }
    return true;
  }

  bool EvalCommand(const Value& dot, const Command& c, const Value* final_value, Value& out, ExecError& err) {
    const Arg& first = c.args.front();
    if (first.kind == ArgKind::kIdent)
      return Call(dot, first, c, final_value, out, err);
    if (c.args.size() > 1 || final_value) {
      err = {first.pos, first.text, "can't give argument to non-function " + first.text};
      return false;
    }
    return EvalArg(dot, first, out, err);
  }

  bool EvalArg(const Value& dot, const Arg& a, Value& out, ExecError& err) {
    Value base;
    switch (a.kind) {
      case ArgKind::kDot:
      case ArgKind::kField:
        base = dot;
        break;
      case ArgKind::kVariable:
        base = Lookup(a.name);
        break;
      case ArgKind::kParen:
        if (!EvalPipe(dot, *a.pipe, base, err))
          return false;
        break;
      case ArgKind::kLiteral:
        out = Value::Of(a.literal);
        return true;
      case ArgKind::kNil:
        out = Value::Of(nullptr);
        return true;
      case ArgKind::kIdent: {
        Command c{a.pos, {a}};
        return Call(dot, a, c, nullptr, out, err);
      }
    }
    for (const std::string& f : a.fields)
      if (!Field(base, f, a, base, err))
        return false;
    out = base;
    return true;
  }

  Value Lookup(const std::string& name) const {
    for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
      if (it->first == name)
        return it->second;
    return Value::Missing();
  }

  bool Field(const Value& recv, const std::string& name, const Arg& a, Value& out, ExecError& err) {
    if (recv.header) {
      auto it = headers_->find(name);
      out = Value::Of(it != headers_->end() ? it->second : HeaderFor(name));
      out.header = true;
      return true;
    }
    if (recv.missing()) {
      out = Value::Missing();
      return true;
    }
    const Json& j = recv.j();
    if (j.is_null()) {
      err = {a.pos, a.text, "nil pointer evaluating interface {}." + name};
      return false;
    }
    if (!j.is_object()) {
      err = {a.pos, a.text, "can't evaluate field " + name + " in type " + GoTypeName(recv)};
      return false;
    }
    auto it = j.find(name);
    if (it == j.end()) {
      if (recv.is_map) {
        out = Value::Missing();
        return true;
      }
      err = {a.pos, a.text, "can't evaluate field " + name + " in type " + GoTypeName(recv)};
      return false;
    }
    out = recv.Child(*it);
    out.is_map = t_.options.map_fields.count(name) > 0;
    out.type = name;
    return true;
  }

  // ------------------------------------------------------------ functions

  bool Call(const Value& dot, const Arg& fn, const Command& c, const Value* final_value, Value& out,
            ExecError& err) {
    const std::string& name = fn.name;
    auto fail = [&](const std::string& msg) {
      err = {fn.pos, fn.text, "error calling " + name + ": " + msg};
      return false;
    };
    // and/or evaluate their arguments lazily, as Go does since 1.18
    size_t nargs = c.args.size() - 1 + (final_value ? 1 : 0);
    auto arg_at = [&](size_t i, Value& v) -> bool {
      if (i + 1 < c.args.size())
        return EvalArg(dot, c.args[i + 1], v, err);
      v = *final_value;
      return true;
    };
    if (name == "and" || name == "or") {
      if (nargs < 1) {
        err = {fn.pos, fn.text, "wrong number of args for " + name + ": want at least 1 got 0"};
        return false;
      }
      for (size_t i = 0; i < nargs; ++i) {
        if (!arg_at(i, out))
          return false;
        if (Truth(out) == (name == "or"))
          return true;
      }
      return true;
    }
    std::vector<Value> args(nargs);
    for (size_t i = 0; i < nargs; ++i)
      if (!arg_at(i, args[i]))
        return false;
    auto want = [&](size_t n) {
      if (args.size() != n) {
        err = {fn.pos, fn.text,
               "wrong number of args for " + name + ": want " + std::to_string(n) + " got " +
                   std::to_string(args.size())};
        return false;
      }
      return true;
    };
    auto str = [&](size_t i, std::string& s) {
      if (args[i].missing() || !args[i].j().is_string()) {
        err = {fn.pos, fn.text,
               "wrong type for value; expected string; got " + GoTypeName(args[i])};
        return false;
      }
      s = args[i].j().get<std::string>();
      return true;
    };
    auto integer = [&](size_t i, long long& n) {
      if (args[i].missing() || !args[i].j().is_number_integer()) {
        err = {fn.pos, fn.text, "wrong type for value; expected int; got " + GoTypeName(args[i])};
        return false;
      }
      n = args[i].j().is_number_unsigned()
              ? static_cast<long long>(std::min<unsigned long long>(args[i].j().get<unsigned long long>(),
                                                                    1ULL << 62))
              : args[i].j().get<long long>();
      return true;
    };

    if (name == "not") {
      if (!want(1))
        return false;
      out = Value::Of(!Truth(args[0]));
      return true;
    }
    if (name == "eq" || name == "ne" || name == "lt" || name == "le" || name == "gt" || name == "ge") {
      bool eq = name == "eq";
      if (eq ? args.size() < 2 : !want(2)) {
        if (eq)
          err = {fn.pos, fn.text, "wrong number of args for eq: want at least 2 got " + std::to_string(args.size())};
        return false;
      }
      if (name == "eq" || name == "ne") {
        bool any = false;
        for (size_t i = 1; i < args.size(); ++i) {
          int cmp = 0;
          if (!Compare(args[0], args[i], true, cmp, fail))
            return false;
          any = any || cmp == 0;
        }
        out = Value::Of(name == "eq" ? any : !any);
        return true;
      }
      int cmp = 0;
      if (!Compare(args[0], args[1], false, cmp, fail))
        return false;
      bool r = name == "lt" ? cmp < 0 : name == "le" ? cmp <= 0 : name == "gt" ? cmp > 0 : cmp >= 0;
      out = Value::Of(r);
      return true;
    }
    if (name == "len") {
      if (!want(1))
        return false;
      if (args[0].missing())
        return fail("len of nil pointer");
      const Json& j = args[0].j();
      if (j.is_string())
        out = Value::Of(static_cast<long long>(j.get_ref<const std::string&>().size()));
      else if (j.is_array() || j.is_object())
        out = Value::Of(static_cast<long long>(j.size()));
      else
        return fail("len of type " + GoTypeName(args[0]));
      return true;
    }
    if (name == "index") {
      if (args.empty())
        return want(1);
      Value cur = args[0];
      for (size_t i = 1; i < args.size(); ++i) {
        if (cur.missing() || cur.j().is_null())
          return fail("index of untyped nil");
        const Json& j = cur.j();
        const Json& k = args[i].missing() ? Json() : args[i].j();
        if (j.is_array() || j.is_string()) {
          if (!k.is_number_integer())
            return fail("cannot index slice/array with type " + GoTypeName(args[i]));
          long long idx = k.is_number_unsigned() ? -1 : k.get<long long>();
          size_t size = j.is_array() ? j.size() : j.get_ref<const std::string&>().size();
          if (idx < 0 || static_cast<size_t>(idx) >= size)
            return fail("index out of range: " + GoPrint(args[i]));
          if (j.is_array())
            cur = cur.Child(j[static_cast<size_t>(idx)]);
          else
            cur = Value::Of(static_cast<long long>(
                static_cast<unsigned char>(j.get_ref<const std::string&>()[static_cast<size_t>(idx)])));
        } else if (j.is_object()) {
          if (!k.is_string())
            return fail("value has type " + GoTypeName(args[i]) + "; should be string");
          auto it = j.find(k.get<std::string>());
          cur = it == j.end() ? Value::Of("") : cur.Child(*it);  // the zero value, as for map[string]string
        } else {
          return fail("can't index item of type " + GoTypeName(cur));
        }
      }
      out = cur;
      return true;
    }
    if (name == "slice") {
      if (args.empty())
        return want(1);
      if (args.size() > 3)
        return fail("too many slice indexes: " + std::to_string(args.size() - 1));
      if (args[0].missing())
        return fail("slice of untyped nil");
      const Json& j = args[0].j();
      if (!j.is_string() && !j.is_array())
        return fail("can't slice item of type " + GoTypeName(args[0]));
      long long size = static_cast<long long>(j.is_string() ? j.get_ref<const std::string&>().size() : j.size());
      long long lo = 0, hi = size;
      if (args.size() > 1 && !integer(1, lo))
        return false;
      if (args.size() > 2 && !integer(2, hi))
        return false;
      if (lo < 0 || hi > size || lo > hi)
        return fail("invalid slice index: " + std::to_string(lo) + " > " + std::to_string(hi));
      if (j.is_string()) {
        out = Value::Of(j.get_ref<const std::string&>().substr(static_cast<size_t>(lo), static_cast<size_t>(hi - lo)));
      } else {
        Json a = Json::array();
        for (long long i = lo; i < hi; ++i)
          a.push_back(j[static_cast<size_t>(i)]);
        out = Value::Of(std::move(a));
      }
      return true;
    }
    if (name == "printf") {
      std::string f;
      if (args.empty())
        return want(1);
      if (!str(0, f))
        return false;
      std::vector<Value> rest(args.begin() + 1, args.end());
      out = Value::Of(GoSprintf(f, rest));
      return true;
    }
    if (name == "print" || name == "println") {
      std::string s;
      for (size_t i = 0; i < args.size(); ++i) {
        bool is_str = !args[i].missing() && args[i].j().is_string();
        bool prev_str = i > 0 && !args[i - 1].missing() && args[i - 1].j().is_string();
        if (i > 0 && (name == "println" || (!is_str && !prev_str)))
          s += ' ';
        s += args[i].missing() ? "<nil>" : GoPrint(args[i]);
      }
      if (name == "println")
        s += '\n';
      out = Value::Of(s);
      return true;
    }
    if (name == "json") {
      if (!want(1))
        return false;
      out = Value::Of(args[0].missing() ? std::string("null")
                                        : args[0].j().dump(-1, ' ', false, Json::error_handler_t::replace));
      return true;
    }
    if (name == "join") {
      if (!want(2))
        return false;
      std::string sep;
      // A string joins to itself: podman's ps and docker's .Names is one
      // string, and `join .Names ","` is what users type.
      for (const Value& a : args)
        if (a.header) {  // a header row: the column's header
          out = a;
          return true;
        }
      if (!args[0].missing() && args[0].j().is_string()) {
        if (!str(1, sep))
          return false;
        out = args[0];
        return true;
      }
      if (args[0].missing() || !(args[0].j().is_array() || args[0].j().is_null()))
        return fail("wrong type for value; expected []string; got " + GoTypeName(args[0]));
      if (!str(1, sep))
        return false;
      std::string s;
      bool first = true;
      if (args[0].j().is_array())
        for (const auto& e : args[0].j()) {
          if (!e.is_string())
            return fail("wrong type for value; expected []string; got " + GoTypeName(args[0]));
          if (!first)
            s += sep;
          first = false;
          s += e.get<std::string>();
        }
      out = Value::Of(s);
      return true;
    }
    if (name == "lower" || name == "upper" || name == "title") {
      std::string s;
      if (!want(1) || !str(0, s))
        return false;
      if (name == "title") {
        bool sep = true;
        for (char& ch : s) {
          unsigned char u = static_cast<unsigned char>(ch);
          if (sep && u < 0x80)
            ch = static_cast<char>(std::toupper(u));
          sep = u < 0x80 && !std::isalnum(u) && u != '_';
        }
      } else {
        for (char& ch : s)
          if (static_cast<unsigned char>(ch) < 0x80)
            ch = static_cast<char>(name == "lower" ? std::tolower(static_cast<unsigned char>(ch))
                                                   : std::toupper(static_cast<unsigned char>(ch)));
      }
      out = Value::Of(s);
      return true;
    }
    if (name == "truncate") {
      std::string s;
      long long n = 0;
      if (!want(2) || !str(0, s) || !integer(1, n))
        return false;
      if (n < 0)
        return fail("negative length " + std::to_string(n));
      if (static_cast<size_t>(n) < s.size())
        s.resize(static_cast<size_t>(n));
      out = Value::Of(s);
      return true;
    }
    if (name == "pad") {
      std::string s;
      long long pre = 0, post = 0;
      if (!want(3) || !str(0, s) || !integer(1, pre) || !integer(2, post))
        return false;
      if (pre < 0 || post < 0 || pre + post > static_cast<long long>(t_.options.max_output))
        return fail("bad padding " + std::to_string(pre) + ", " + std::to_string(post));
      out = Value::Of(std::string(static_cast<size_t>(pre), ' ') + s + std::string(static_cast<size_t>(post), ' '));
      return true;
    }
    if (name == "split") {
      std::string s, sep;
      if (!want(2) || !str(0, s) || !str(1, sep))
        return false;
      Json a = Json::array();
      if (sep.empty()) {
        for (size_t i = 0; i < s.size();) {
          unsigned char u = static_cast<unsigned char>(s[i]);
          size_t len = u < 0x80 ? 1 : (u & 0xE0) == 0xC0 ? 2 : (u & 0xF0) == 0xE0 ? 3 : 4;
          len = std::min(len, s.size() - i);
          a.push_back(s.substr(i, len));
          i += len;
        }
      } else {
        size_t p = 0;
        while (true) {
          size_t q = s.find(sep, p);
          a.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
          if (q == std::string::npos)
            break;
          p = q + sep.size();
        }
      }
      out = Value::Of(std::move(a));
      return true;
    }
    if (name == "urlquery") {
      std::string s, r;
      for (size_t i = 0; i < args.size(); ++i)
        s += (i && !(args[i].j().is_string() || args[i - 1].j().is_string()) ? " " : "") +
             (args[i].missing() ? std::string("<nil>") : GoPrint(args[i]));
      for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
          r += static_cast<char>(ch);
        } else if (ch == ' ') {
          r += '+';
        } else {
          char buf[4];
          std::snprintf(buf, sizeof buf, "%%%02X", ch);
          r += buf;
        }
      }
      out = Value::Of(r);
      return true;
    }
    return fail("not supported");
  }

  // Go's eq/lt: basic kinds only; integers and floats compare by value.
  template <typename Fail>
  static bool Compare(const Value& a, const Value& b, bool equality, int& cmp, Fail& fail) {
    auto kind = [](const Value& v) -> int {
      if (v.missing() || v.j().is_null())
        return 0;
      const Json& j = v.j();
      if (j.is_boolean()) return 1;
      if (j.is_number()) return 2;
      if (j.is_string()) return 3;
      return 4;
    };
    int ka = kind(a), kb = kind(b);
    if (ka == 4 || kb == 4)
      return fail(std::string("invalid type for comparison"));
    if (ka == 0 || kb == 0) {
      if (!equality)
        return fail(std::string("invalid type for comparison"));
      cmp = ka == kb ? 0 : 1;
      return true;
    }
    if (ka != kb)
      return fail(std::string("incompatible types for comparison"));
    const Json& x = a.j();
    const Json& y = b.j();
    if (ka == 1) {
      if (!equality)
        return fail(std::string("invalid type for comparison"));
      cmp = x.get<bool>() == y.get<bool>() ? 0 : 1;
    } else if (ka == 3) {
      const auto& s = x.get_ref<const std::string&>();
      const auto& t = y.get_ref<const std::string&>();
      cmp = s < t ? -1 : s > t ? 1 : 0;
    } else if (x.is_number_integer() && y.is_number_integer()) {
      if (x.is_number_unsigned() || y.is_number_unsigned()) {
        // compare as signed unless a value does not fit
        bool xn = !x.is_number_unsigned() && x.get<long long>() < 0;
        bool yn = !y.is_number_unsigned() && y.get<long long>() < 0;
        if (xn != yn) {
          cmp = xn ? -1 : 1;
        } else {
          unsigned long long u = x.get<unsigned long long>(), v = y.get<unsigned long long>();
          cmp = u < v ? -1 : u > v ? 1 : 0;
        }
      } else {
        long long u = x.get<long long>(), v = y.get<long long>();
        cmp = u < v ? -1 : u > v ? 1 : 0;
      }
    } else {
      double u = x.get<double>(), v = y.get<double>();
      cmp = u < v ? -1 : u > v ? 1 : 0;
    }
    return true;
  }

  const Template::Impl& t_;
  const std::map<std::string, std::string>* headers_;
  std::string* out_ = nullptr;
  std::vector<std::pair<std::string, Value>> vars_;
  bool stop_ = false;
  size_t steps_ = 0;
};

// "template: [name:]LINE:COL: "
std::string Where(const Template::Impl& t, size_t pos) {
  pos = std::min(pos, t.text.size());
  size_t line = 1 + static_cast<size_t>(std::count(t.text.begin(), t.text.begin() + static_cast<long>(pos), '\n'));
  size_t nl = pos == 0 ? std::string::npos : t.text.rfind('\n', pos - 1);
  size_t col = nl == std::string::npos ? pos : pos - nl - 1;
  std::string s = "template: ";
  if (!t.options.name.empty())
    s += t.options.name + ":";
  return s + std::to_string(line) + ":" + std::to_string(col) + ": ";
}

Expected<std::string> Run(const std::shared_ptr<const Template::Impl>& impl, const Json& data,
                          const std::map<std::string, std::string>* headers) {
  Exec exec(*impl, headers);
  std::string out;
  ExecError err;
  Value root = headers ? Value::Of("") : Value::Ref(data);
  root.type = impl->options.type_name;
  root.header = headers != nullptr;
  if (!exec.Run(root, out, err)) {
    std::string msg = Where(*impl, err.pos) + "executing";
    if (!impl->options.name.empty())
      msg += " \"" + impl->options.name + "\"";
    if (!err.at.empty())
      msg += " at <" + err.at + ">";
    return Error(Errc::kInvalidInput, msg + ": " + err.message);
  }
  return out;
}

}  // namespace

Expected<Template> Template::Parse(std::string_view text, Options options) {
  auto impl = std::make_shared<Impl>();
  impl->text = std::string(text);
  impl->options = std::move(options);
  std::vector<internal::Token> toks;
  internal::SyntaxError err;
  if (!internal::Lex(impl->text, toks, err))
    return Error(Errc::kInvalidInput, Where(*impl, err.pos) + err.message);
  if (!internal::ParseTokens(toks, impl->root, err))
    return Error(Errc::kInvalidInput, Where(*impl, err.pos) + err.message);
  Template t;
  t.impl_ = std::move(impl);
  return t;
}

Expected<std::string> Template::Execute(const nlohmann::json& data) const { return Run(impl_, data, nullptr); }

Expected<std::string> Template::ExecuteHeaders(const std::map<std::string, std::string>& overrides) const {
  return Run(impl_, Json::object(), &overrides);
}

}  // namespace kiln::format
