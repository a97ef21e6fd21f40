// The Go-template engine: every construct podman users write, and the
// messages for bad templates (position and field named).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kiln/format.h"

namespace kiln::format {
namespace {

using nlohmann::json;

const json& Data() {
  static const json d = json::parse(R"({
    "ID": "0123456789abcdef",
    "Names": ["web", "front"],
    "Image": "localhost/busybox:latest",
    "State": {"Status": "running", "Pid": 42, "Running": true, "ExitCode": 0},
    "Labels": {"app": "shop", "tier": "web", "com.example.x": "dotted"},
    "Ports": [],
    "Size": 2131046,
    "Ratio": 1.5,
    "Big": 1000000.0,
    "Empty": "",
    "Null": null,
    "Zero": 0,
    "Command": ["sleep", "1000"],
    "Mounts": [{"Source": "/a", "Destination": "/b"}, {"Source": "/c", "Destination": "/d"}]
  })");
  return d;
}

std::string Render(const std::string& text, const json& data = Data(), Options options = {}) {
  auto t = Template::Parse(text, options);
  if (!t)
    return "PARSE ERROR: " + t.error().message();
  auto out = t->Execute(data);
  if (!out)
    return "EXEC ERROR: " + out.error().message();
  return *out;
}

std::string ParseError(const std::string& text) {
  auto t = Template::Parse(text);
  return t ? "parsed" : t.error().message();
}

std::string ExecError(const std::string& text, Options options = {}) {
  auto t = Template::Parse(text, options);
  if (!t)
    return "PARSE ERROR: " + t.error().message();
  auto out = t->Execute(Data());
  return out ? "ran: " + *out : out.error().message();
}

/// One table row: a template and what it gives (Render(): the output, or
/// "PARSE ERROR: ..."/"EXEC ERROR: ..."; ParseError()/ExecError(): the message).
struct Case {
  std::string text;
  std::string want;
};

void ExpectRenders(std::initializer_list<Case> cases) {
  for (const Case& c : cases)
    EXPECT_EQ(Render(c.text), c.want) << c.text;
}

void ExpectParseErrors(std::initializer_list<Case> cases) {
  for (const Case& c : cases)
    EXPECT_EQ(ParseError(c.text), c.want) << c.text;
}

void ExpectExecErrors(std::initializer_list<Case> cases) {
  for (const Case& c : cases)
    EXPECT_EQ(ExecError(c.text), c.want) << c.text;
}

TEST(Template, TextOnly) {
  ExpectRenders({
      {"", ""},
      {"plain text, no actions", "plain text, no actions"},
      {"a { b } c", "a { b } c"},
  });
}

TEST(Template, Fields) {
  ExpectRenders({
      {"{{.ID}}", "0123456789abcdef"},
      {"{{ .Image }}", "localhost/busybox:latest"},
      {"{{.State.Status}} {{.State.Pid}}", "running 42"},
      {"{{.Size}}", "2131046"},
      {"{{.State.Running}}", "true"},
  });
}

TEST(Template, GoPrinting) {
  ExpectRenders({
      {"{{.Names}}", "[web front]"},
      {"{{.Labels}}", "map[app:shop com.example.x:dotted tier:web]"},
      {"{{.Ports}}", "[]"},
      {"{{.Null}}", "<nil>"},
      {"{{.Ratio}} {{.Big}}", "1.5 1e+06"},
      {"{{.Mounts}}", "[map[Destination:/b Source:/a] map[Destination:/d Source:/c]]"},
      {"{{0.000012}} {{123456.0}} {{-2.5e30}}", "1.2e-05 123456 -2.5e+30"},
  });
  EXPECT_EQ(Render("{{.}}", json{{"a", 1}}), "map[a:1]");
}

TEST(Template, MapKeys) {
  ExpectRenders({
      {"{{.Labels.app}}", "shop"},
      // a missing map key is Go's <no value>, not an error
      {"{{.Labels.nope}}", "<no value>"},
      {"{{.Labels.nope.deeper}}", "<no value>"},
      {"{{index .Labels \"com.example.x\"}}", "dotted"},
      {"[{{index .Labels \"missing\"}}]", "[]"},
  });
}

TEST(Template, Json) {
  ExpectRenders({
      {"{{json .Names}}", R"(["web","front"])"},
      {"{{json .State}}", R"({"ExitCode":0,"Pid":42,"Running":true,"Status":"running"})"},
      {"{{json .Labels.nope}}", "null"},
      {"{{.Names | json}}", R"(["web","front"])"},
  });
  EXPECT_EQ(Render("{{json .}}", json{{"a", "<b>&"}}), R"({"a":"<b>&"})");  // no HTML escaping, as podman
}

TEST(Template, Range) {
  ExpectRenders({
      {"{{range .Names}}<{{.}}>{{end}}", "<web><front>"},
      {"{{range $i, $n := .Names}}{{$i}}={{$n}} {{end}}", "0=web 1=front "},
      {"{{range $n := .Names}}{{$n}};{{end}}", "web;front;"},
      {"{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}", "app=shop,com.example.x=dotted,tier=web,"},
      {"{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/a:/b /c:/d "},
      {"{{range .Ports}}x{{else}}none{{end}}", "none"},
      {"{{range .Null}}x{{else}}nil{{end}}", "nil"},
      {"{{range .Names}}{{$.ID}} {{end}}", "0123456789abcdef 0123456789abcdef "},
      {"{{range .Names}}{{if eq . \"front\"}}{{break}}{{end}}{{.}}{{end}}", "web"},
      {"{{range .Names}}{{if eq . \"web\"}}{{continue}}{{end}}{{.}}{{end}}", "front"},
      {"{{range 3}}{{.}}{{end}}", "012"},
  });
}

TEST(Template, IfElse) {
  ExpectRenders({
      {"{{if .State.Running}}up{{end}}", "up"},
      {"{{if .Empty}}yes{{else}}no{{end}}", "no"},
      {"{{if .Zero}}a{{else if .Empty}}b{{else if .Names}}c{{else}}d{{end}}", "c"},
      {"{{if .Null}}a{{else if .Ports}}b{{else}}d{{end}}", "d"},
      {"{{if .Labels.nope}}a{{else}}missing{{end}}", "missing"},
      {"{{with .State}}{{.Status}}{{end}}", "running"},
      {"{{with .Empty}}x{{else}}empty{{end}}", "empty"},
      {"{{with $s := .State.Status}}{{$s}}{{end}}", "running"},
  });
}

TEST(Template, Comparisons) {
  ExpectRenders({
      {"{{eq .State.Status \"running\"}}", "true"},
      {"{{eq .State.Status \"a\" \"b\" \"running\"}}", "true"},
      {"{{ne .State.Pid 42}}", "false"},
      {"{{lt 1 2}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}}", "true true true false"},
      {"{{lt \"a\" \"b\"}} {{gt 2.5 2}}", "true true"},
      {"{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" 3}} {{or 0 \"\"}}", "0 2 3 "},
      {"{{not .Empty}} {{not .Names}}", "true false"},
      // and/or stop at the first deciding argument, as Go's do
      {"{{or .ID (index .Names 9)}}", "0123456789abcdef"},
      {"{{if and .State.Running (gt .State.Pid 10)}}ok{{end}}", "ok"},
  });
}

TEST(Template, Functions) {
  ExpectRenders({
      {"{{join .Names \",\"}}", "web,front"},
      {"{{join .Command \" \"}}", "sleep 1000"},
      {"{{lower \"AbC\"}} {{upper .State.Status}} {{title \"hello wide-world_x\"}}", "abc RUNNING Hello Wide-World_x"},
      {"{{len .Names}} {{len .ID}} {{len .Labels}}", "2 16 3"},
      {"{{truncate .ID 12}} {{truncate \"ab\" 5}}", "0123456789ab ab"},
      {"{{slice .ID 0 4}} {{slice .ID 12}} {{slice .Names 1}}", "0123 cdef [front]"},
      {"[{{pad \"x\" 2 1}}]", "[  x ]"},
      {"{{split \"a:b:c\" \":\"}} {{index (split \"a:b\" \":\") 1}}", "[a b c] b"},
      {"{{index .Names 1}} {{index .Mounts 1 \"Source\"}}", "front /c"},
      {"{{print \"a\" 1 2 \"b\"}}|{{println 1 \"x\"}}", "a1 2b|1 x\n"},
      {"{{urlquery \"a b&c\"}}", "a+b%26c"},
  });
}

TEST(Template, Printf) {
  ExpectRenders({
      {"{{printf \"%s %d\" .State.Status .State.Pid}}", "running 42"},
      {"{{printf \"%-8s|%8s|\" \"ab\" \"cd\"}}", "ab      |      cd|"},
      {"{{printf \"%05d %x %X %o %b %+d\" 42 255 255 8 5 3}}", "00042 ff FF 10 101 +3"},
      {"{{printf \"%q %v %t %c\" \"a\\\"b\" .Names true 65}}", "\"a\\\"b\" [web front] true A"},
      {"{{printf \"%.2f %e %g %v\" .Ratio .Ratio .Ratio .Ratio}}", "1.50 1.500000e+00 1.5 1.5"},
      {"{{printf \"%.3s|%x\" \"abcdef\" \"hi\"}}", "abc|6869"},
      {"{{printf \"%d\" \"x\"}}", "%!d(string=x)"},
      {"{{printf \"%s %s\" \"x\"}}", "x %!s(MISSING)"},
      {"{{printf \"%s\" \"x\" 3}}", "x%!(EXTRA int=3)"},
      {"{{printf \"100%%\"}}", "100%"},
      {"{{.State.Pid | printf \"pid=%d\"}}", "pid=42"},
  });
}

TEST(Template, Pipelines) {
  ExpectRenders({
      {"{{.State.Status | upper}}", "RUNNING"},
      {"{{.ID | truncate 4 | upper}}",
       "EXEC ERROR: template: 1:8: executing at <truncate>: wrong type for value; expected string; got int"},
      // the piped value is the last argument: join "+" .Names
      {"{{.Names | join \"+\"}}",
       "EXEC ERROR: template: 1:11: executing at <join>: wrong type for value; expected string; got []string"},
      {"{{join .ID \",\"}}", "0123456789abcdef"},  // a string joins to itself (podman's .Names)
      {"{{join .Size \",\"}}",
       "EXEC ERROR: template: 1:2: executing at <join>: error calling join: "
       "wrong type for value; expected []string; got int"},
      {"{{\"x\" | printf \"%s-%s\" \"y\"}}", "y-x"},
      {"{{(index .Names 0) | upper}}", "WEB"},
      {"{{(.State).Status}}", "running"},
      {"{{len (split .Image \"/\")}}", "2"},
  });
}

TEST(Template, Variables) {
  ExpectRenders({
      {"{{$x := .State.Status}}[{{$x}}]", "[running]"},
      {"{{$x := 1}}{{$x = 2}}{{$x}}", "2"},
      {"{{$s := .State}}{{$s.Status}} {{$.ID}}", "running 0123456789abcdef"},
      {"{{$n := \"\"}}{{range .Names}}{{$n = .}}{{end}}{{$n}}", "front"},
      {"{{range .Names}}{{$x := .}}{{end}}", ""},
  });
}

TEST(Template, TrimMarkers) {
  ExpectRenders({
      {"a  {{- .State.Status -}}  b", "arunningb"},
      {"{{range .Names -}}\n  {{.}}\n{{- end}}", "webfront"},
      {"x {{- /* a comment */ -}} y", "xy"},
      {"x{{/* a comment */}}y", "xy"},
      // without the blank, "-3" is a number
      {"{{-3}}", "-3"},
  });
}

TEST(Template, Literals) {
  ExpectRenders({
      {"{{\"a\\tb\"}}|{{`raw\\n`}}|{{'x'}}|{{0x1F}}|{{true}}", "a\tb|raw\\n|120|31|true"},
      {"{{\"}}\"}}", "}}"},
  });
}

TEST(Template, MissingFieldErrors) {
  Options o;
  o.name = "ps";
  o.type_name = "containers.psReporter";
  EXPECT_EQ(ExecError("{{.Foo}}", o),
            "template: ps:1:2: executing \"ps\" at <.Foo>: can't evaluate field Foo in type containers.psReporter");
  ExpectExecErrors({
      {"id {{.ID}}\n  {{.State.Foo}}",
       "template: 2:4: executing at <.State.Foo>: can't evaluate field Foo in type State"},
      {"{{.ID.Foo}}", "template: 1:2: executing at <.ID.Foo>: can't evaluate field Foo in type string"},
      {"{{.Names.Foo}}", "template: 1:2: executing at <.Names.Foo>: can't evaluate field Foo in type []string"},
      {"{{.Null.Foo}}", "template: 1:2: executing at <.Null.Foo>: nil pointer evaluating interface {}.Foo"},
  });
}

TEST(Template, ExecErrors) {
  ExpectExecErrors({
      {"{{index .Names 5}}", "template: 1:2: executing at <index>: error calling index: index out of range: 5"},
      {"{{len .Size}}", "template: 1:2: executing at <len>: error calling len: len of type int"},
      {"{{lt .Names 1}}", "template: 1:2: executing at <lt>: error calling lt: invalid type for comparison"},
      {"{{eq .ID 1}}", "template: 1:2: executing at <eq>: error calling eq: incompatible types for comparison"},
      {"{{upper 1}}", "template: 1:2: executing at <upper>: wrong type for value; expected string; got int"},
      {"{{.ID 1}}", "template: 1:2: executing at <.ID>: can't give argument to non-function .ID"},
      {"{{range .ID}}{{end}}", "template: 1:2: executing: range can't iterate over 0123456789abcdef"},
      {"{{truncate .ID -1}}", "template: 1:2: executing at <truncate>: error calling truncate: negative length -1"},
      {"{{join .Names}}", "template: 1:2: executing at <join>: wrong number of args for join: want 2 got 1"},
  });
}

TEST(Template, ParseErrors) {
  ExpectParseErrors({
      {"{{.ID", "template: 1:0: unclosed action"},
      {"abc {{.ID}} {{", "template: 1:12: unclosed action"},
      {"{{foo .ID}}", "template: 1:2: function \"foo\" not defined"},
      {"{{if .ID}}x", "template: 1:2: unexpected EOF: {{if}} without {{end}}"},
      {"x{{end}}", "template: 1:3: unexpected {{end}}"},
      {"{{else}}", "template: 1:2: unexpected {{else}}"},
      {"{{$x}}", "template: 1:2: undefined variable \"$x\""},
      {"{{$x = 1}}", "template: 1:5: undefined variable \"$x\""},
      {"{{}}", "template: 1:2: missing value for command"},
      {"{{.ID | }}", "template: 1:8: missing command after |"},
      {"{{\"abc}}", "template: 1:2: unterminated quoted string"},
      {"{{(.ID}}", "template: 1:6: unclosed left paren"},
      {"{{.ID)}}", "template: 1:5: unexpected right paren"},
      {"{{break}}", "template: 1:2: {{break}} outside {{range}}"},
      {"{{define \"x\"}}{{end}}", "template: 1:2: {{define}} is not supported (one template only)"},
      {"{{nil}}", "template: 1:2: nil is not a command"},
      {"{{/* open", "template: 1:0: unclosed comment"},
      {"{{ .A # }}", "template: 1:6: unexpected bad character # in action"},
      {"line1\n{{if}}{{end}}", "template: 2:4: missing value for command"},
      {"{{.A \"x\" | \"y\"}}", "template: 1:11: non executable command in pipeline stage 2"},
  });
}

TEST(Template, OutputLimit) {
  Options o;
  o.max_output = 100;
  EXPECT_EQ(Render("{{range 1000}}abc{{end}}", Data(), o).rfind("EXEC ERROR: template: 1:14: executing: output larger", 0),
            0u);
}

TEST(Template, Limits) {
  Options o;
  o.max_steps = 1000;
  EXPECT_EQ(Render("{{range 100000000000}}{{end}}", Data(), o),
            "EXEC ERROR: template: 1:2: executing: more than 1000 steps");
  EXPECT_EQ(ParseError("{{" + std::string(300, '(') + "1" + std::string(300, ')') + "}}"),
            "template: 1:202: nesting deeper than 200");
  std::string ifs;
  for (int i = 0; i < 300; ++i)
    ifs += "{{if 1}}";
  EXPECT_EQ(ParseError(ifs), "template: 1:1602: nesting deeper than 200");
}

TEST(Template, Headers) {
  auto t = Template::Parse("{{.ID}}\t{{.CreatedAt}}\t{{.Names | join \",\"}}\t{{json .Labels}}\t{{.State.Status}}\n");
  ASSERT_TRUE(t);
  auto h = t->ExecuteHeaders({{"ID", "CONTAINER ID"}});
  ASSERT_TRUE(h) << h.error().message();
  // {{json .Labels}} prints the JSON of the header string, as podman does
  EXPECT_EQ(*h, "CONTAINER ID\tCREATED AT\tNAMES\t\"LABELS\"\tSTATUS\n");
  auto r = Template::Parse("{{range .Names}}{{.}}{{end}} {{if .A}}{{.B}}{{end}} {{$x := .C}}{{printf \"%s\" \"lit\"}}");
  ASSERT_TRUE(r);
  auto rh = r->ExecuteHeaders({});
  ASSERT_TRUE(rh) << rh.error().message();
  EXPECT_EQ(*rh, " B lit");
  auto p = Template::Parse("{{printf \"%s/%s\" .ID .Names}} {{len .Names}}");
  ASSERT_TRUE(p);
  EXPECT_EQ(*p->ExecuteHeaders({{"ID", "CONTAINER ID"}}), "CONTAINER ID/NAMES 5");
}

}  // namespace
}  // namespace kiln::format
