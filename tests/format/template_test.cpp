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

TEST(Template, TextOnly) {
  EXPECT_EQ(Render(""), "");
  EXPECT_EQ(Render("plain text, no actions"), "plain text, no actions");
  EXPECT_EQ(Render("a { b } c"), "a { b } c");
}

TEST(Template, Fields) {
  EXPECT_EQ(Render("{{.ID}}"), "0123456789abcdef");
  EXPECT_EQ(Render("{{ .Image }}"), "localhost/busybox:latest");
  EXPECT_EQ(Render("{{.State.Status}} {{.State.Pid}}"), "running 42");
  EXPECT_EQ(Render("{{.Size}}"), "2131046");
  EXPECT_EQ(Render("{{.State.Running}}"), "true");
}

TEST(Template, GoPrinting) {
  EXPECT_EQ(Render("{{.Names}}"), "[web front]");
  EXPECT_EQ(Render("{{.Labels}}"), "map[app:shop com.example.x:dotted tier:web]");
  EXPECT_EQ(Render("{{.Ports}}"), "[]");
  EXPECT_EQ(Render("{{.Null}}"), "<nil>");
  EXPECT_EQ(Render("{{.Ratio}} {{.Big}}"), "1.5 1e+06");
  EXPECT_EQ(Render("{{.Mounts}}"), "[map[Destination:/b Source:/a] map[Destination:/d Source:/c]]");
  EXPECT_EQ(Render("{{.}}", json{{"a", 1}}), "map[a:1]");
  EXPECT_EQ(Render("{{0.000012}} {{123456.0}} {{-2.5e30}}"), "1.2e-05 123456 -2.5e+30");
}

TEST(Template, MapKeys) {
  EXPECT_EQ(Render("{{.Labels.app}}"), "shop");
  // a missing map key is Go's <no value>, not an error
  EXPECT_EQ(Render("{{.Labels.nope}}"), "<no value>");
  EXPECT_EQ(Render("{{.Labels.nope.deeper}}"), "<no value>");
  EXPECT_EQ(Render("{{index .Labels \"com.example.x\"}}"), "dotted");
  EXPECT_EQ(Render("[{{index .Labels \"missing\"}}]"), "[]");
}

TEST(Template, Json) {
  EXPECT_EQ(Render("{{json .Names}}"), R"(["web","front"])");
  EXPECT_EQ(Render("{{json .State}}"), R"({"ExitCode":0,"Pid":42,"Running":true,"Status":"running"})");
  EXPECT_EQ(Render("{{json .}}", json{{"a", "<b>&"}}), R"({"a":"<b>&"})");  // no HTML escaping, as podman
  EXPECT_EQ(Render("{{json .Labels.nope}}"), "null");
  EXPECT_EQ(Render("{{.Names | json}}"), R"(["web","front"])");
}

TEST(Template, Range) {
  EXPECT_EQ(Render("{{range .Names}}<{{.}}>{{end}}"), "<web><front>");
  EXPECT_EQ(Render("{{range $i, $n := .Names}}{{$i}}={{$n}} {{end}}"), "0=web 1=front ");
  EXPECT_EQ(Render("{{range $n := .Names}}{{$n}};{{end}}"), "web;front;");
  EXPECT_EQ(Render("{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}"), "app=shop,com.example.x=dotted,tier=web,");
  EXPECT_EQ(Render("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}"), "/a:/b /c:/d ");
  EXPECT_EQ(Render("{{range .Ports}}x{{else}}none{{end}}"), "none");
  EXPECT_EQ(Render("{{range .Null}}x{{else}}nil{{end}}"), "nil");
  EXPECT_EQ(Render("{{range .Names}}{{$.ID}} {{end}}"), "0123456789abcdef 0123456789abcdef ");
  EXPECT_EQ(Render("{{range .Names}}{{if eq . \"front\"}}{{break}}{{end}}{{.}}{{end}}"), "web");
  EXPECT_EQ(Render("{{range .Names}}{{if eq . \"web\"}}{{continue}}{{end}}{{.}}{{end}}"), "front");
  EXPECT_EQ(Render("{{range 3}}{{.}}{{end}}"), "012");
}

TEST(Template, IfElse) {
  EXPECT_EQ(Render("{{if .State.Running}}up{{end}}"), "up");
  EXPECT_EQ(Render("{{if .Empty}}yes{{else}}no{{end}}"), "no");
  EXPECT_EQ(Render("{{if .Zero}}a{{else if .Empty}}b{{else if .Names}}c{{else}}d{{end}}"), "c");
  EXPECT_EQ(Render("{{if .Null}}a{{else if .Ports}}b{{else}}d{{end}}"), "d");
  EXPECT_EQ(Render("{{if .Labels.nope}}a{{else}}missing{{end}}"), "missing");
  EXPECT_EQ(Render("{{with .State}}{{.Status}}{{end}}"), "running");
  EXPECT_EQ(Render("{{with .Empty}}x{{else}}empty{{end}}"), "empty");
  EXPECT_EQ(Render("{{with $s := .State.Status}}{{$s}}{{end}}"), "running");
}

TEST(Template, Comparisons) {
  EXPECT_EQ(Render("{{eq .State.Status \"running\"}}"), "true");
  EXPECT_EQ(Render("{{eq .State.Status \"a\" \"b\" \"running\"}}"), "true");
  EXPECT_EQ(Render("{{ne .State.Pid 42}}"), "false");
  EXPECT_EQ(Render("{{lt 1 2}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}}"), "true true true false");
  EXPECT_EQ(Render("{{lt \"a\" \"b\"}} {{gt 2.5 2}}"), "true true");
  EXPECT_EQ(Render("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" 3}} {{or 0 \"\"}}"), "0 2 3 ");
  EXPECT_EQ(Render("{{not .Empty}} {{not .Names}}"), "true false");
  // and/or stop at the first deciding argument, as Go's do
  EXPECT_EQ(Render("{{or .ID (index .Names 9)}}"), "0123456789abcdef");
  EXPECT_EQ(Render("{{if and .State.Running (gt .State.Pid 10)}}ok{{end}}"), "ok");
}

TEST(Template, Functions) {
  EXPECT_EQ(Render("{{join .Names \",\"}}"), "web,front");
  EXPECT_EQ(Render("{{join .Command \" \"}}"), "sleep 1000");
  EXPECT_EQ(Render("{{lower \"AbC\"}} {{upper .State.Status}} {{title \"hello wide-world_x\"}}"),
            "abc RUNNING Hello Wide-World_x");
  EXPECT_EQ(Render("{{len .Names}} {{len .ID}} {{len .Labels}}"), "2 16 3");
  EXPECT_EQ(Render("{{truncate .ID 12}} {{truncate \"ab\" 5}}"), "0123456789ab ab");
  EXPECT_EQ(Render("{{slice .ID 0 4}} {{slice .ID 12}} {{slice .Names 1}}"), "0123 cdef [front]");
  EXPECT_EQ(Render("[{{pad \"x\" 2 1}}]"), "[  x ]");
  EXPECT_EQ(Render("{{split \"a:b:c\" \":\"}} {{index (split \"a:b\" \":\") 1}}"), "[a b c] b");
  EXPECT_EQ(Render("{{index .Names 1}} {{index .Mounts 1 \"Source\"}}"), "front /c");
  EXPECT_EQ(Render("{{print \"a\" 1 2 \"b\"}}|{{println 1 \"x\"}}"), "a1 2b|1 x\n");
  EXPECT_EQ(Render("{{urlquery \"a b&c\"}}"), "a+b%26c");
}

TEST(Template, Printf) {
  EXPECT_EQ(Render("{{printf \"%s %d\" .State.Status .State.Pid}}"), "running 42");
  EXPECT_EQ(Render("{{printf \"%-8s|%8s|\" \"ab\" \"cd\"}}"), "ab      |      cd|");
  EXPECT_EQ(Render("{{printf \"%05d %x %X %o %b %+d\" 42 255 255 8 5 3}}"), "00042 ff FF 10 101 +3");
  EXPECT_EQ(Render("{{printf \"%q %v %t %c\" \"a\\\"b\" .Names true 65}}"), "\"a\\\"b\" [web front] true A");
  EXPECT_EQ(Render("{{printf \"%.2f %e %g %v\" .Ratio .Ratio .Ratio .Ratio}}"), "1.50 1.500000e+00 1.5 1.5");
  EXPECT_EQ(Render("{{printf \"%.3s|%x\" \"abcdef\" \"hi\"}}"), "abc|6869");
  EXPECT_EQ(Render("{{printf \"%d\" \"x\"}}"), "%!d(string=x)");
  EXPECT_EQ(Render("{{printf \"%s %s\" \"x\"}}"), "x %!s(MISSING)");
  EXPECT_EQ(Render("{{printf \"%s\" \"x\" 3}}"), "x%!(EXTRA int=3)");
  EXPECT_EQ(Render("{{printf \"100%%\"}}"), "100%");
  EXPECT_EQ(Render("{{.State.Pid | printf \"pid=%d\"}}"), "pid=42");
}

TEST(Template, Pipelines) {
  EXPECT_EQ(Render("{{.State.Status | upper}}"), "RUNNING");
  EXPECT_EQ(Render("{{.ID | truncate 4 | upper}}"), "EXEC ERROR: template: 1:8: executing at <truncate>: "
                                                    "wrong type for value; expected string; got int");
  // the piped value is the last argument: join "+" .Names
  EXPECT_EQ(Render("{{.Names | join \"+\"}}"),
            "EXEC ERROR: template: 1:11: executing at <join>: wrong type for value; expected string; got []string");
  EXPECT_EQ(Render("{{join .ID \",\"}}"), "0123456789abcdef");  // a string joins to itself (podman's .Names)
  EXPECT_EQ(Render("{{join .Size \",\"}}"), "EXEC ERROR: template: 1:2: executing at <join>: error calling join: "
                                           "wrong type for value; expected []string; got int");
  EXPECT_EQ(Render("{{\"x\" | printf \"%s-%s\" \"y\"}}"), "y-x");
  EXPECT_EQ(Render("{{(index .Names 0) | upper}}"), "WEB");
  EXPECT_EQ(Render("{{(.State).Status}}"), "running");
  EXPECT_EQ(Render("{{len (split .Image \"/\")}}"), "2");
}

TEST(Template, Variables) {
  EXPECT_EQ(Render("{{$x := .State.Status}}[{{$x}}]"), "[running]");
  EXPECT_EQ(Render("{{$x := 1}}{{$x = 2}}{{$x}}"), "2");
  EXPECT_EQ(Render("{{$s := .State}}{{$s.Status}} {{$.ID}}"), "running 0123456789abcdef");
  EXPECT_EQ(Render("{{$n := \"\"}}{{range .Names}}{{$n = .}}{{end}}{{$n}}"), "front");
  EXPECT_EQ(Render("{{range .Names}}{{$x := .}}{{end}}"), "");
}

TEST(Template, TrimMarkers) {
  EXPECT_EQ(Render("a  {{- .State.Status -}}  b"), "arunningb");
  EXPECT_EQ(Render("{{range .Names -}}\n  {{.}}\n{{- end}}"), "webfront");
  EXPECT_EQ(Render("x {{- /* a comment */ -}} y"), "xy");
  EXPECT_EQ(Render("x{{/* a comment */}}y"), "xy");
  // without the blank, "-3" is a number
  EXPECT_EQ(Render("{{-3}}"), "-3");
}

TEST(Template, Literals) {
  EXPECT_EQ(Render("{{\"a\\tb\"}}|{{`raw\\n`}}|{{'x'}}|{{0x1F}}|{{true}}"), "a\tb|raw\\n|120|31|true");
  EXPECT_EQ(Render("{{\"}}\"}}"), "}}");
}

TEST(Template, MissingFieldErrors) {
  Options o;
  o.name = "ps";
  o.type_name = "containers.psReporter";
  EXPECT_EQ(ExecError("{{.Foo}}", o),
            "template: ps:1:2: executing \"ps\" at <.Foo>: can't evaluate field Foo in type containers.psReporter");
  EXPECT_EQ(ExecError("id {{.ID}}\n  {{.State.Foo}}"),
            "template: 2:4: executing at <.State.Foo>: can't evaluate field Foo in type State");
  EXPECT_EQ(ExecError("{{.ID.Foo}}"), "template: 1:2: executing at <.ID.Foo>: can't evaluate field Foo in type string");
  EXPECT_EQ(ExecError("{{.Names.Foo}}"),
            "template: 1:2: executing at <.Names.Foo>: can't evaluate field Foo in type []string");
  EXPECT_EQ(ExecError("{{.Null.Foo}}"),
            "template: 1:2: executing at <.Null.Foo>: nil pointer evaluating interface {}.Foo");
}

TEST(Template, ExecErrors) {
  EXPECT_EQ(ExecError("{{index .Names 5}}"),
            "template: 1:2: executing at <index>: error calling index: index out of range: 5");
  EXPECT_EQ(ExecError("{{len .Size}}"), "template: 1:2: executing at <len>: error calling len: len of type int");
  EXPECT_EQ(ExecError("{{lt .Names 1}}"),
            "template: 1:2: executing at <lt>: error calling lt: invalid type for comparison");
  EXPECT_EQ(ExecError("{{eq .ID 1}}"),
            "template: 1:2: executing at <eq>: error calling eq: incompatible types for comparison");
  EXPECT_EQ(ExecError("{{upper 1}}"),
            "template: 1:2: executing at <upper>: wrong type for value; expected string; got int");
  EXPECT_EQ(ExecError("{{.ID 1}}"), "template: 1:2: executing at <.ID>: can't give argument to non-function .ID");
  EXPECT_EQ(ExecError("{{range .ID}}{{end}}"), "template: 1:2: executing: range can't iterate over 0123456789abcdef");
  EXPECT_EQ(ExecError("{{truncate .ID -1}}"),
            "template: 1:2: executing at <truncate>: error calling truncate: negative length -1");
  EXPECT_EQ(ExecError("{{join .Names}}"),
            "template: 1:2: executing at <join>: wrong number of args for join: want 2 got 1");
}

TEST(Template, ParseErrors) {
  EXPECT_EQ(ParseError("{{.ID"), "template: 1:0: unclosed action");
  EXPECT_EQ(ParseError("abc {{.ID}} {{"), "template: 1:12: unclosed action");
  EXPECT_EQ(ParseError("{{foo .ID}}"), "template: 1:2: function \"foo\" not defined");
  EXPECT_EQ(ParseError("{{if .ID}}x"), "template: 1:2: unexpected EOF: {{if}} without {{end}}");
  EXPECT_EQ(ParseError("x{{end}}"), "template: 1:3: unexpected {{end}}");
  EXPECT_EQ(ParseError("{{else}}"), "template: 1:2: unexpected {{else}}");
  EXPECT_EQ(ParseError("{{$x}}"), "template: 1:2: undefined variable \"$x\"");
  EXPECT_EQ(ParseError("{{$x = 1}}"), "template: 1:5: undefined variable \"$x\"");
  EXPECT_EQ(ParseError("{{}}"), "template: 1:2: missing value for command");
  EXPECT_EQ(ParseError("{{.ID | }}"), "template: 1:8: missing command after |");
  EXPECT_EQ(ParseError("{{\"abc}}"), "template: 1:2: unterminated quoted string");
  EXPECT_EQ(ParseError("{{(.ID}}"), "template: 1:6: unclosed left paren");
  EXPECT_EQ(ParseError("{{.ID)}}"), "template: 1:5: unexpected right paren");
  EXPECT_EQ(ParseError("{{break}}"), "template: 1:2: {{break}} outside {{range}}");
  EXPECT_EQ(ParseError("{{define \"x\"}}{{end}}"), "template: 1:2: {{define}} is not supported (one template only)");
  EXPECT_EQ(ParseError("{{nil}}"), "template: 1:2: nil is not a command");
  EXPECT_EQ(ParseError("{{/* open"), "template: 1:0: unclosed comment");
  EXPECT_EQ(ParseError("{{ .A # }}"), "template: 1:6: unexpected bad character # in action");
  EXPECT_EQ(ParseError("line1\n{{if}}{{end}}"), "template: 2:4: missing value for command");
  EXPECT_EQ(ParseError("{{.A \"x\" | \"y\"}}"), "template: 1:11: non executable command in pipeline stage 2");
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
