// The compose translator without a file system: files in a map, the
// environment in a map. Every form of every supported key and every error
// (file:line:column and the key), then golden files over testdata/compose.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "kiln/compose.h"
#include "kiln/fs.h"
#include "support/golden.h"
#include "support/testdata.h"

namespace kiln::compose {
namespace {

using deployment::Project;
using deployment::Service;

struct Fixture {
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> env;
  LoadOptions Options(std::vector<std::string> f = {}) {
    LoadOptions o;
    o.files = std::move(f);
    o.working_dir = "/proj/myapp";
    o.environ = env;
    o.read_file = [this](const std::string& p) -> std::optional<std::string> {
      auto it = files.find(p);
      if (it == files.end())
        return std::nullopt;
      return it->second;
    };
    return o;
  }
  // A testdata/compose/<case> directory: its compose.yaml, its env (as
  // .env) when there is one, and the app.env its services name. False when
  // the case has no compose.yaml.
  bool AddCase(const std::string& dir) {
    auto text = ReadFile(dir + "/compose.yaml");
    if (!text)
      return false;
    files["/proj/myapp/compose.yaml"] = *text;
    if (auto e = ReadFile(dir + "/env"))
      files["/proj/myapp/.env"] = *e;
    files["/proj/myapp/app.env"] = "FROM_FILE=1\n";
    return true;
  }
};

Expected<LoadResult> LoadText(const std::string& yaml, std::map<std::string, std::string> env = {},
                              std::map<std::string, std::string> extra = {}) {
  Fixture fx;
  fx.files["/proj/myapp/compose.yaml"] = yaml;
  for (auto& [k, v] : extra)
    fx.files[k] = v;
  fx.env = std::move(env);
  return Load(fx.Options());
}

Project MustLoad(const std::string& yaml, std::map<std::string, std::string> env = {},
                 std::map<std::string, std::string> extra = {}) {
  auto r = LoadText(yaml, std::move(env), std::move(extra));
  EXPECT_TRUE(r) << (r ? "" : r.error().message());
  return r ? r->project : Project{};
}

std::string ErrorOf(const std::string& yaml, std::map<std::string, std::string> env = {},
                    std::map<std::string, std::string> extra = {}) {
  auto r = LoadText(yaml, std::move(env), std::move(extra));
  EXPECT_FALSE(r) << "expected an error for:\n" << yaml;
  if (r)
    return "";
  EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
  return r.error().message();
}

const Service& Svc(const Project& p, const std::string& name) {
  for (const auto& s : p.services)
    if (s.name == name)
      return s;
  static Service none;
  ADD_FAILURE() << "no service " << name;
  return none;
}

// --- interpolation ---------------------------------------------------------------

std::string Interp(const std::string& text, std::map<std::string, std::string> vars,
                   std::vector<std::string>* unset = nullptr) {
  auto r = Interpolate(
      text,
      [&](const std::string& k) -> std::optional<std::string> {
        auto it = vars.find(k);
        if (it == vars.end())
          return std::nullopt;
        return it->second;
      },
      unset);
  return r ? *r : "ERROR: " + r.error().message();
}

TEST(ComposeInterpolate, EveryOperatorAsTheSpecSays) {
  std::map<std::string, std::string> v = {{"SET", "value"}, {"EMPTY", ""}};
  EXPECT_EQ(Interp("${SET}", v), "value");
  EXPECT_EQ(Interp("$SET/x", v), "value/x");
  EXPECT_EQ(Interp("${UNSET:-d}", v), "d");
  EXPECT_EQ(Interp("${EMPTY:-d}", v), "d");
  EXPECT_EQ(Interp("${EMPTY-d}", v), "");
  EXPECT_EQ(Interp("${UNSET-d}", v), "d");
  EXPECT_EQ(Interp("${SET:-d}", v), "value");
  EXPECT_EQ(Interp("${SET:+r}", v), "r");
  EXPECT_EQ(Interp("${EMPTY:+r}", v), "");
  EXPECT_EQ(Interp("${EMPTY+r}", v), "r");
  EXPECT_EQ(Interp("$$SET and $${SET}", v), "$SET and ${SET}");
  EXPECT_EQ(Interp("${UNSET:-${SET}}", v), "value");
  EXPECT_EQ(Interp("${UNSET:-${ALSO:-deep}}", v), "deep");
  EXPECT_EQ(Interp("cost $5 and 100%", v), "cost $5 and 100%");
  EXPECT_EQ(Interp("trailing $", v), "trailing $");
}

TEST(ComposeInterpolate, RequiredVariablesFailWithTheirMessage) {
  std::map<std::string, std::string> v = {{"EMPTY", ""}};
  EXPECT_EQ(Interp("${DB_PASSWORD:?set DB_PASSWORD in .env}", v),
            "ERROR: required variable DB_PASSWORD is missing a value: set DB_PASSWORD in .env");
  EXPECT_EQ(Interp("${EMPTY:?must not be empty}", v), "ERROR: required variable EMPTY is missing a value: must not be empty");
  EXPECT_EQ(Interp("${EMPTY?unset}", v), "");
  EXPECT_EQ(Interp("${UNSET?}", v), "ERROR: required variable UNSET is missing a value");
}

TEST(ComposeInterpolate, UnsetVariablesAreReportedAndBlank) {
  std::vector<std::string> unset;
  EXPECT_EQ(Interp("a${NOPE}b$ALSO", {}, &unset), "ab");
  EXPECT_EQ(unset, (std::vector<std::string>{"NOPE", "ALSO"}));
}

TEST(ComposeInterpolate, BadSyntaxIsAnError) {
  EXPECT_NE(Interp("${UNCLOSED", {}).find("missing closing brace"), std::string::npos);
  EXPECT_NE(Interp("${1X}", {}).find("does not start with a variable name"), std::string::npos);
  EXPECT_NE(Interp("${X/a/b}", {}).find("unsupported"), std::string::npos);
}

TEST(ComposeDotEnv, LinesQuotesCommentsAndExport) {
  auto r = ParseDotEnv(
      "# comment\n"
      "A=1\n"
      "export B = two \n"
      "C='single $A # kept'\n"
      "D=\"double $A\\nline\"\n"
      "E=unquoted # comment\n"
      "F=${A}-${NOPE:-dflt}\n"
      "G=\"multi\nline\"\n"
      "HOSTVAR\n"
      "MISSING\n"
      "EMPTY=\n",
      ".env", [](const std::string& k) -> std::optional<std::string> {
        if (k == "HOSTVAR")
          return std::string("from-host");
        return std::nullopt;
      });
  ASSERT_TRUE(r) << r.error().message();
  std::vector<std::pair<std::string, std::string>> want = {
      {"A", "1"},           {"B", "two"},          {"C", "single $A # kept"},
      {"D", "double 1\nline"}, {"E", "unquoted"}, {"F", "1-dflt"},
      {"G", "multi\nline"}, {"HOSTVAR", "from-host"}, {"EMPTY", ""}};
  EXPECT_EQ(*r, want);
}

TEST(ComposeDotEnv, ErrorsNameTheLine) {
  auto r = ParseDotEnv("A=1\nB=\"open\n", "app.env", [](const std::string&) { return std::nullopt; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "app.env:2: unterminated quoted value of B");
  auto bad = ParseDotEnv("A=1\nnot a line\n", "app.env", [](const std::string&) { return std::nullopt; });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "app.env:2: \"not a line\" is not KEY=VALUE");
}

TEST(ComposeShellWords, SplitsAsComposeDoes) {
  auto w = SplitShellWords("sh -c 'echo \"hi there\"' \"a b\" c\\ d");
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, (std::vector<std::string>{"sh", "-c", "echo \"hi there\"", "a b", "c d"}));
  EXPECT_FALSE(SplitShellWords("echo 'open"));
}

TEST(ComposeProjectName, RuleAndNormalisation) {
  EXPECT_TRUE(IsValidProjectName("my-app_2"));
  EXPECT_FALSE(IsValidProjectName("My-App"));
  EXPECT_FALSE(IsValidProjectName("-app"));
  EXPECT_FALSE(IsValidProjectName(""));
  EXPECT_EQ(NormalizeProjectName("My App.v2"), "myappv2");
  EXPECT_EQ(NormalizeProjectName("_x"), "x");
}

// --- the project -------------------------------------------------------------------

TEST(ComposeLoad, ProjectNameFromDirectoryNameKeyAndFlag) {
  EXPECT_EQ(MustLoad("services: {a: {image: busybox}}\n").name, "myapp");
  EXPECT_EQ(MustLoad("name: shop\nservices: {a: {image: busybox}}\n").name, "shop");
  EXPECT_EQ(MustLoad("name: shop\nservices: {a: {image: busybox}}\n", {{"COMPOSE_PROJECT_NAME", "envname"}}).name,
            "envname");
  Fixture fx;
  fx.files["/proj/myapp/compose.yaml"] = "name: shop\nservices: {a: {image: busybox}}\n";
  auto o = fx.Options();
  o.project_name = "flag";
  auto r = Load(o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->project.name, "flag");
  o.project_name = "Bad Name";
  r = Load(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "-p: invalid project name \"Bad Name\": must contain only lower case letters, digits, '-' and '_', and "
            "start with a letter or digit");
  EXPECT_EQ(ErrorOf("name: Shop\nservices: {a: {image: busybox}}\n"),
            "/proj/myapp/compose.yaml:1:7: name: invalid project name \"Shop\": must contain only lower case letters, "
            "digits, '-' and '_', and start with a letter or digit");
}

TEST(ComposeLoad, DefaultFileNamesAndOverride) {
  Fixture fx;
  fx.files["/proj/myapp/docker-compose.yml"] = "services:\n  web:\n    image: a\n    ports: [\"80\"]\n";
  fx.files["/proj/myapp/docker-compose.override.yml"] = "services:\n  web:\n    image: b\n";
  auto r = Load(fx.Options());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->project.services[0].image, "b");
  EXPECT_EQ(r->project.services[0].ports.size(), 1u);
  EXPECT_EQ(r->project.config_files,
            (std::vector<std::string>{"/proj/myapp/docker-compose.yml", "/proj/myapp/docker-compose.override.yml"}));
  fx.files.clear();
  r = Load(fx.Options());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("no compose file found in /proj/myapp"), std::string::npos);
}

TEST(ComposeLoad, DotEnvAndEnvFileFeedInterpolationShellWins) {
  std::string yaml = "services:\n  web:\n    image: \"nginx:${TAG:-latest}\"\n    container_name: ${NAME}\n";
  auto p = MustLoad(yaml, {}, {{"/proj/myapp/.env", "TAG=1.25\nNAME=front\n"}});
  EXPECT_EQ(p.services[0].image, "nginx:1.25");
  EXPECT_EQ(p.services[0].container_name, "front");
  p = MustLoad(yaml, {{"TAG", "shell"}}, {{"/proj/myapp/.env", "TAG=1.25\nNAME=front\n"}});
  EXPECT_EQ(p.services[0].image, "nginx:shell");

  Fixture fx;
  fx.files["/proj/myapp/compose.yaml"] = yaml;
  fx.files["/proj/myapp/.env"] = "TAG=dotenv\n";
  fx.files["/proj/myapp/prod.env"] = "TAG=prod\nNAME=p\n";
  auto o = fx.Options();
  o.env_files = {"prod.env"};
  auto r = Load(o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->project.services[0].image, "nginx:prod");
  o.env_files = {"missing.env"};
  r = Load(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "--env-file /proj/myapp/missing.env: no such file");
}

TEST(ComposeLoad, UnsetVariableWarnsAndRequiredOneFailsWithPosition) {
  auto r = LoadText("services:\n  web:\n    image: busybox\n    hostname: h${NOPE}\n");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0], "/proj/myapp/compose.yaml:4:15: services.web.hostname: the \"NOPE\" variable is not set, "
                            "defaulting to a blank string");
  EXPECT_EQ(ErrorOf("services:\n  db:\n    image: postgres\n    environment:\n      PW: ${PW:?set PW}\n"),
            "/proj/myapp/compose.yaml:5:11: services.db.environment.PW: required variable PW is missing a value: set PW");
}

TEST(ComposeLoad, VersionIgnoredWithWarningIncludeAndExtendsWarn) {
  auto r = LoadText(
      "version: \"3.8\"\ninclude: [other.yaml]\nservices:\n  web:\n    image: busybox\n    extends: {service: base}\n");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->warnings.size(), 3u);
  EXPECT_EQ(r->warnings[0], "/proj/myapp/compose.yaml:1:1: version: the attribute `version` is obsolete, it will be ignored");
  EXPECT_EQ(r->warnings[1],
            "/proj/myapp/compose.yaml:2:1: include: include is not supported yet: the files it names are left out");
  EXPECT_EQ(r->warnings[2], "/proj/myapp/compose.yaml:6:5: services.web.extends: extends is not supported yet: left "
                            "out, the service is used without what it extends");
}

TEST(ComposeLoad, UnknownAndUnsupportedKeysWarnByName) {
  auto r = LoadText("x-common: {a: 1}\nservices:\n  web:\n    image: busybox\n    imgae: typo\n    deploy: {replicas: 2}\n"
                    "    x-mine: ok\nfoo: bar\n");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->warnings.size(), 3u);
  EXPECT_EQ(r->warnings[0], "/proj/myapp/compose.yaml:5:5: services.web.imgae: unknown key, left out");
  EXPECT_EQ(r->warnings[1], "/proj/myapp/compose.yaml:6:5: services.web.deploy: not supported by kiln yet, left out");
  EXPECT_EQ(r->warnings[2], "/proj/myapp/compose.yaml:8:1: foo: unknown key, left out");
}

TEST(ComposeLoad, Profiles) {
  std::string yaml =
      "services:\n  web: {image: a}\n  debug: {image: b, profiles: [debug]}\n  backup: {image: c, profiles: [ops, "
      "debug]}\n";
  auto p = MustLoad(yaml);
  ASSERT_EQ(p.services.size(), 1u);
  Fixture fx;
  fx.files["/proj/myapp/compose.yaml"] = yaml;
  auto o = fx.Options();
  o.profiles = {"ops"};
  auto r = Load(o);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->project.services.size(), 2u);
  EXPECT_EQ(r->project.services[0].name, "backup");
  fx.env["COMPOSE_PROFILES"] = "debug";
  r = Load(fx.Options());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->project.services.size(), 3u);
  EXPECT_EQ(ErrorOf("services:\n  web: {image: a, depends_on: [tool]}\n  tool: {image: b, profiles: [t]}\n"),
            "/proj/myapp/compose.yaml:2:3: services.web.depends_on: service \"web\" depends on service \"tool\", which "
            "no active profile enables (add --profile for it, or required: false)");
}

TEST(ComposeLoad, MergesFilesInOrder) {
  Fixture fx;
  fx.files["/proj/myapp/a.yaml"] =
      "services:\n  web:\n    image: a\n    command: [one, two]\n    environment: [A=1, B=2]\n    ports: [\"80:80\"]\n"
      "    volumes: [\"data:/data\", \"./src:/src\"]\n    labels: {x: \"1\"}\n    depends_on: [db]\n  db: {image: "
      "postgres}\nvolumes: {data: {}}\n";
  fx.files["/proj/myapp/b.yaml"] =
      "services:\n  web:\n    command: three\n    environment: {B: override, C: \"3\"}\n    ports: [\"80:80\", "
      "\"443:443\"]\n    volumes: [\"./other:/src:ro\"]\n    labels: [y=2]\n    depends_on: {db: {condition: "
      "service_healthy}}\n";
  auto r = Load(fx.Options({"a.yaml", "b.yaml"}));
  ASSERT_TRUE(r) << r.error().message();
  const Service& web = Svc(r->project, "web");
  EXPECT_EQ(web.image, "a");
  EXPECT_EQ(*web.command, (std::vector<std::string>{"three"}));
  ASSERT_EQ(web.environment.size(), 3u);
  EXPECT_EQ(web.environment[1].value, "override");
  EXPECT_EQ(web.ports.size(), 2u);
  ASSERT_EQ(web.volumes.size(), 2u);
  EXPECT_EQ(web.volumes[1].source, "/proj/myapp/other");
  EXPECT_TRUE(web.volumes[1].read_only);
  EXPECT_EQ(web.labels, (std::map<std::string, std::string>{{"x", "1"}, {"y", "2"}}));
  ASSERT_EQ(web.depends_on.size(), 1u);
  EXPECT_EQ(web.depends_on[0].condition, "service_healthy");
}

TEST(ComposeLoad, AnchorsAndMergeKeys) {
  auto p = MustLoad(
      "x-base: &base\n  image: busybox\n  restart: always\n  environment: {A: \"1\"}\nservices:\n  one:\n    <<: "
      "*base\n  two:\n    <<: *base\n    restart: \"no\"\n");
  EXPECT_EQ(Svc(p, "one").restart, "always");
  EXPECT_EQ(Svc(p, "two").restart, "no");
  EXPECT_EQ(Svc(p, "two").image, "busybox");
}

// --- service keys, each form ---------------------------------------------------------

Service OneService(const std::string& body, std::map<std::string, std::string> env = {},
                   std::map<std::string, std::string> extra = {}) {
  auto p = MustLoad("services:\n  s:\n" + body + "volumes: {data: {}, db: {}}\nnetworks: {front: {}, back: {}}\n"
                    "secrets: {pw: {file: ./pw.txt}, token: {environment: TOKEN}}\n",
                    std::move(env), std::move(extra));
  return p.services.empty() ? Service{} : p.services[0];
}

TEST(ComposeService, BuildStringAndLongForm) {
  auto s = OneService("    build: ./web\n");
  ASSERT_TRUE(s.build);
  EXPECT_EQ(s.build->context, "/proj/myapp/web");
  EXPECT_EQ(s.build->dockerfile, "Dockerfile");
  s = OneService("    build:\n      context: web\n      dockerfile: Containerfile.dev\n      args: [A=1, B]\n"
                 "      target: dev\n      secrets: [pw]\n    image: myweb\n",
                 {{"B", "fromenv"}});
  ASSERT_TRUE(s.build);
  EXPECT_EQ(s.build->dockerfile, "Containerfile.dev");
  EXPECT_EQ(s.build->target, "dev");
  ASSERT_EQ(s.build->args.size(), 2u);
  EXPECT_EQ(s.build->args[1].second, "fromenv");
  ASSERT_EQ(s.build->secrets.size(), 1u);
  EXPECT_EQ(s.image, "myweb");
  s = OneService("    build: {context: \"https://github.com/x/y.git#main\"}\n");
  EXPECT_EQ(s.build->context, "https://github.com/x/y.git#main");
}

TEST(ComposeService, CommandAndEntrypointStringOrList) {
  auto s = OneService("    image: a\n    command: sh -c 'echo \"$$HOME\"'\n    entrypoint: [\"/bin/tini\", \"--\"]\n");
  EXPECT_EQ(*s.command, (std::vector<std::string>{"sh", "-c", "echo \"$HOME\""}));
  EXPECT_EQ(*s.entrypoint, (std::vector<std::string>{"/bin/tini", "--"}));
}

TEST(ComposeService, EnvironmentListOrMapAndFromTheShell) {
  auto s = OneService("    image: a\n    environment: [A=1, B=x=y, FROMSHELL, NOTSET]\n", {{"FROMSHELL", "sh"}});
  ASSERT_EQ(s.environment.size(), 4u);
  EXPECT_EQ(s.environment[0].value, "1");
  EXPECT_EQ(s.environment[1].value, "x=y");
  EXPECT_EQ(s.environment[2].value, "sh");
  EXPECT_FALSE(s.environment[3].value);
  s = OneService("    image: a\n    environment:\n      NUM: 5432\n      FLAG: true\n      EMPTY: \"\"\n      NULLV:\n");
  ASSERT_EQ(s.environment.size(), 4u);
  EXPECT_EQ(s.environment[0].name, "EMPTY");
  EXPECT_EQ(s.environment[1].value, "true");
  EXPECT_FALSE(s.environment[2].value);
  EXPECT_EQ(s.environment[3].value, "5432");
}

TEST(ComposeService, EnvFileStringListLongFormAndEnvironmentWins) {
  std::map<std::string, std::string> files = {{"/proj/myapp/a.env", "A=from-a\nB=from-a\n"},
                                              {"/proj/myapp/b.env", "B=from-b\n"}};
  auto s = OneService("    image: a\n    env_file: a.env\n", {}, files);
  EXPECT_EQ(s.environment.size(), 2u);
  s = OneService("    image: a\n    env_file: [a.env, b.env]\n    environment: {A: explicit}\n", {}, files);
  ASSERT_EQ(s.environment.size(), 2u);
  EXPECT_EQ(s.environment[0].value, "explicit");
  EXPECT_EQ(s.environment[1].value, "from-b");
  s = OneService("    image: a\n    env_file:\n      - path: missing.env\n        required: false\n      - a.env\n", {}, files);
  EXPECT_EQ(s.env_files.size(), 2u);
  EXPECT_FALSE(s.env_files[0].required);
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    env_file: missing.env\n"),
            "/proj/myapp/compose.yaml:4:15: services.s.env_file: env file /proj/myapp/missing.env not found");
}

TEST(ComposeService, PortsShortLongAndRanges) {
  auto s = OneService(
      "    image: a\n    ports:\n      - \"3000\"\n      - 8080:80\n      - \"127.0.0.1:8001:8001\"\n      - "
      "\"9090-9091:8080-8081\"\n      - \"6060:6060/udp\"\n      - \"[::1]:5353:53/udp\"\n      - "
      "\"127.0.0.1::5000\"\n      - \"8000-8010:80\"\n      - target: 443\n        published: \"8443\"\n        "
      "host_ip: 0.0.0.0\n        protocol: tcp\n        mode: host\n");
  using deployment::PortMapping;
  std::vector<PortMapping> want = {
      {"", "", 3000, "", "tcp", "ingress", ""},          {"", "", 80, "8080", "tcp", "ingress", ""},
      {"", "127.0.0.1", 8001, "8001", "tcp", "ingress", ""}, {"", "", 8080, "9090", "tcp", "ingress", ""},
      {"", "", 8081, "9091", "tcp", "ingress", ""},      {"", "", 6060, "6060", "udp", "ingress", ""},
      {"", "::1", 53, "5353", "udp", "ingress", ""},     {"", "127.0.0.1", 5000, "", "tcp", "ingress", ""},
      {"", "", 80, "8000-8010", "tcp", "ingress", ""},   {"", "0.0.0.0", 443, "8443", "tcp", "host", ""}};
  EXPECT_EQ(s.ports, want);
}

TEST(ComposeService, PortErrors) {
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    ports: [\"80:http\"]\n"),
            "/proj/myapp/compose.yaml:4:13: services.s.ports[0]: invalid port \"80:http\": container port \"http\" is "
            "not a port (1-65535) or range (write [[IP:]HOST:]CONTAINER[/PROTOCOL], ranges as 8000-8010)");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    ports: [\"80/icmp\"]\n"),
            "/proj/myapp/compose.yaml:4:13: services.s.ports[0]: invalid port \"80/icmp\": unknown protocol \"icmp\" "
            "(write [[IP:]HOST:]CONTAINER[/PROTOCOL], ranges as 8000-8010)");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    ports: [\"1-3:1-2\"]\n"),
            "/proj/myapp/compose.yaml:4:13: services.s.ports[0]: invalid port \"1-3:1-2\": the host range and the "
            "container range differ in size (write [[IP:]HOST:]CONTAINER[/PROTOCOL], ranges as 8000-8010)");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    ports:\n      - published: 80\n"),
            "/proj/myapp/compose.yaml:5:9: services.s.ports[0]: target (the container port) is required");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    ports:\n      - target: 70000\n"),
            "/proj/myapp/compose.yaml:5:17: services.s.ports[0].target: 70000 is out of range (1-65535)");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    ports: 80\n"),
            "/proj/myapp/compose.yaml:4:12: services.s.ports: must be a list, not a number");
}

TEST(ComposeService, VolumesNamedBindReadOnlyAnonymousAndLongForm) {
  auto s = OneService(
      "    image: a\n    volumes:\n      - data:/var/lib/data\n      - ./conf:/etc/conf:ro\n      - /abs/path:/abs\n"
      "      - ~/cache:/cache:rw,z\n      - /anon\n      - type: volume\n        source: db\n        target: /db\n  "
      "      read_only: true\n        volume: {nocopy: true, subpath: sub}\n      - type: bind\n        source: "
      "./src\n        target: /src\n        bind: {create_host_path: false, propagation: rshared}\n      - type: "
      "tmpfs\n        target: /tmp\n        tmpfs: {size: 1048576, mode: 0o1777}\n",
      {{"HOME", "/home/u"}});
  ASSERT_EQ(s.volumes.size(), 8u);
  EXPECT_EQ(s.volumes[0].type, "volume");
  EXPECT_EQ(s.volumes[0].source, "data");
  EXPECT_EQ(s.volumes[1].type, "bind");
  EXPECT_EQ(s.volumes[1].source, "/proj/myapp/conf");
  EXPECT_TRUE(s.volumes[1].read_only);
  EXPECT_TRUE(s.volumes[1].create_host_path);
  EXPECT_EQ(s.volumes[2].source, "/abs/path");
  EXPECT_EQ(s.volumes[3].source, "/home/u/cache");
  EXPECT_EQ(s.volumes[3].selinux, "z");
  EXPECT_EQ(s.volumes[4].type, "volume");
  EXPECT_EQ(s.volumes[4].source, "");
  EXPECT_EQ(s.volumes[4].target, "/anon");
  EXPECT_TRUE(s.volumes[5].read_only);
  EXPECT_TRUE(s.volumes[5].nocopy);
  EXPECT_EQ(s.volumes[5].subpath, "sub");
  EXPECT_FALSE(s.volumes[6].create_host_path);
  EXPECT_EQ(s.volumes[6].propagation, "rshared");
  EXPECT_EQ(s.volumes[7].tmpfs_size, 1048576);
}

TEST(ComposeService, VolumeErrors) {
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    volumes: [\"nodecl:/x\"]\n"),
            "/proj/myapp/compose.yaml:2:3: services.s.volumes: service \"s\" refers to undefined volume \"nodecl\" "
            "(declare it under the top-level volumes:)");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    volumes: [\"./x:relative\"]\n"),
            "/proj/myapp/compose.yaml:4:15: services.s.volumes[0]: the target \"relative\" must be an absolute path");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    volumes: [\"./x:/y:bogus\"]\n"),
            "/proj/myapp/compose.yaml:4:15: services.s.volumes[0]: invalid volume mode \"bogus\" in \"./x:/y:bogus\" "
            "(ro, rw, z, Z, nocopy, a propagation)");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    volumes:\n      - type: npipe\n        target: /x\n"),
            "/proj/myapp/compose.yaml:5:9: services.s.volumes[0]: type \"npipe\" is not supported (volume, bind, tmpfs)");
}

TEST(ComposeService, NetworksListOrMapWithAliasesAndAddress) {
  auto s = OneService("    image: a\n    networks: [front, back]\n");
  ASSERT_EQ(s.networks.size(), 2u);
  EXPECT_EQ(s.networks[1].network, "back");
  s = OneService("    image: a\n    networks:\n      front:\n        aliases: [web, www]\n        ipv4_address: "
                 "10.5.0.5\n      back:\n");
  ASSERT_EQ(s.networks.size(), 2u);
  EXPECT_EQ(s.networks[0].aliases, (std::vector<std::string>{"web", "www"}));
  EXPECT_EQ(s.networks[0].ipv4_address, "10.5.0.5");
  s = OneService("    image: a\n");
  ASSERT_EQ(s.networks.size(), 1u);
  EXPECT_EQ(s.networks[0].network, "default");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    networks: [nope]\n"),
            "/proj/myapp/compose.yaml:2:3: services.s.networks: service \"s\" refers to undefined network \"nope\"");
}

TEST(ComposeService, DependsOnListOrMapWithConditions) {
  auto p = MustLoad("services:\n  db: {image: a}\n  mig: {image: a}\n  web:\n    image: a\n    depends_on:\n      db:\n  "
                    "      condition: service_healthy\n        restart: true\n      mig:\n        condition: "
                    "service_completed_successfully\n        required: false\n");
  const Service& web = Svc(p, "web");
  ASSERT_EQ(web.depends_on.size(), 2u);
  EXPECT_EQ(web.depends_on[0].condition, "service_healthy");
  EXPECT_TRUE(web.depends_on[0].restart);
  EXPECT_FALSE(web.depends_on[1].required);
  p = MustLoad("services:\n  db: {image: a}\n  web: {image: a, depends_on: [db]}\n");
  EXPECT_EQ(Svc(p, "web").depends_on[0].condition, "service_started");
  EXPECT_EQ(ErrorOf("services:\n  web: {image: a, depends_on: {db: {condition: healthy}}}\n  db: {image: a}\n"),
            "/proj/myapp/compose.yaml:2:48: services.web.depends_on.db.condition: unknown condition \"healthy\" "
            "(service_started, service_healthy, service_completed_successfully)");
  EXPECT_EQ(ErrorOf("services:\n  web: {image: a, depends_on: [ghost]}\n"),
            "/proj/myapp/compose.yaml:2:3: services.web.depends_on: service \"web\" depends on undefined service \"ghost\"");
  EXPECT_EQ(ErrorOf("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n"),
            "/proj/myapp/compose.yaml:3:3: services.b.depends_on: dependency cycle: a -> b -> a");
}

TEST(ComposeService, HealthcheckForms) {
  auto s = OneService("    image: a\n    healthcheck:\n      test: [\"CMD\", \"pg_isready\"]\n      interval: 1m30s\n  "
                      "    timeout: 500ms\n      retries: 3\n      start_period: 40s\n");
  ASSERT_TRUE(s.healthcheck);
  EXPECT_EQ(s.healthcheck->test, (std::vector<std::string>{"CMD", "pg_isready"}));
  EXPECT_EQ(*s.healthcheck->interval_ns, 90'000'000'000);
  EXPECT_EQ(*s.healthcheck->timeout_ns, 500'000'000);
  EXPECT_EQ(*s.healthcheck->retries, 3);
  s = OneService("    image: a\n    healthcheck:\n      test: nc -z localhost 5432\n");
  EXPECT_EQ(s.healthcheck->test, (std::vector<std::string>{"CMD-SHELL", "nc -z localhost 5432"}));
  s = OneService("    image: a\n    healthcheck: {disable: true}\n");
  EXPECT_TRUE(s.healthcheck->disable);
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    healthcheck: {test: [curl, x]}\n"),
            "/proj/myapp/compose.yaml:4:25: services.s.healthcheck.test: a list must start with CMD, CMD-SHELL or NONE");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    healthcheck: {interval: 10}\n"),
            "/proj/myapp/compose.yaml:4:29: services.s.healthcheck.interval: invalid duration \"10\" (write e.g. 10s, "
            "1m30s, 500ms)");
}

TEST(ComposeService, ScalarKeysAndLists) {
  auto s = OneService(
      "    image: a\n    restart: on-failure:3\n    container_name: web1\n    hostname: web\n    working_dir: /app\n"
      "    user: 1000:1000\n    labels: [com.example.a=1, b=2]\n    stop_signal: SIGINT\n    stop_grace_period: 1m\n"
      "    tmpfs: /run\n    extra_hosts: [\"db.local=10.0.0.2\", \"old:10.0.0.3\", \"v6=[::1]\"]\n    init: true\n"
      "    secrets: [pw, {source: token, target: api, mode: 0400}]\n");
  EXPECT_EQ(s.restart, "on-failure:3");
  EXPECT_EQ(s.container_name, "web1");
  EXPECT_EQ(s.hostname, "web");
  EXPECT_EQ(s.working_dir, "/app");
  EXPECT_EQ(s.user, "1000:1000");
  EXPECT_EQ(s.labels.size(), 2u);
  EXPECT_EQ(s.stop_signal, "SIGINT");
  EXPECT_EQ(*s.stop_grace_period_ns, 60'000'000'000);
  EXPECT_EQ(s.tmpfs, (std::vector<std::string>{"/run"}));
  ASSERT_EQ(s.extra_hosts.size(), 3u);
  EXPECT_EQ(s.extra_hosts[1].ip, "10.0.0.3");
  EXPECT_EQ(s.extra_hosts[2].ip, "::1");
  EXPECT_TRUE(*s.init);
  ASSERT_EQ(s.secrets.size(), 2u);
  EXPECT_EQ(s.secrets[1].target, "api");
  EXPECT_EQ(*s.secrets[1].mode, 0400u);
}

TEST(ComposeService, ScalarErrors) {
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    restart: sometimes\n"),
            "/proj/myapp/compose.yaml:4:14: services.s.restart: unknown restart policy \"sometimes\" (no, always, "
            "on-failure[:N], unless-stopped)");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    init: maybe\n"),
            "/proj/myapp/compose.yaml:4:11: services.s.init: must be a boolean, not \"maybe\"");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: [a]\n"),
            "/proj/myapp/compose.yaml:3:12: services.s.image: must be a string, not a sequence");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    container_name: x\n"),
            "/proj/myapp/compose.yaml:3:5: services.s: service has neither an image nor a build context specified");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    working_dir: app\n"),
            "/proj/myapp/compose.yaml:4:18: services.s.working_dir: must be an absolute path, not \"app\"");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    secrets: [nope]\n"),
            "/proj/myapp/compose.yaml:2:3: services.s.secrets: service \"s\" refers to undefined secret \"nope\"");
  EXPECT_EQ(ErrorOf("services:\n  s:\n    image: a\n    extra_hosts: [nohost]\n"),
            "/proj/myapp/compose.yaml:4:19: services.s.extra_hosts[0]: invalid extra host \"nohost\" (write HOST=IP or "
            "HOST:IP)");
}

TEST(ComposeTopLevel, VolumesAndNetworksShareNameDriverLabelsAndExternalKeys) {
  auto p = MustLoad(
      "services:\n  s: {image: a}\nvolumes:\n  v: {driver: local, driver_opts: {type: tmpfs}, labels: {a: b}}\n"
      "  old: {external: {name: legacy}}\nnetworks:\n  n: {driver: bridge, labels: {c: d}, internal: true}\n"
      "  oldnet: {external: {name: legacynet}}\n");
  EXPECT_EQ(p.volumes["v"].driver, "local");
  EXPECT_EQ(p.volumes["v"].driver_opts["type"], "tmpfs");
  EXPECT_EQ(p.volumes["v"].labels["a"], "b");
  EXPECT_TRUE(p.volumes["old"].external);
  EXPECT_EQ(p.volumes["old"].name, "legacy");
  EXPECT_EQ(p.networks["n"].labels["c"], "d");
  EXPECT_TRUE(p.networks["n"].internal);
  EXPECT_EQ(p.networks["oldnet"].name, "legacynet");
  EXPECT_EQ(ErrorOf("services:\n  s: {image: a}\nnetworks:\n  n: {external: maybe}\n"),
            "/proj/myapp/compose.yaml:4:17: networks.n.external: must be a boolean, not \"maybe\"");
}

TEST(ComposeTopLevel, VolumesNetworksSecretsNamesAndExternal) {
  auto p = MustLoad(
      "services:\n  s: {image: a}\nvolumes:\n  data:\n  ext: {external: true}\n  named: {name: custom}\nnetworks:\n  "
      "front: {driver: bridge, ipam: {config: [{subnet: 10.5.0.0/24}]}}\n  shared: {external: true, name: "
      "hostnet}\nsecrets:\n  pw: {file: ./pw.txt}\n  tok: {environment: TOKEN}\n");
  EXPECT_EQ(p.volumes["data"].name, "myapp_data");
  EXPECT_EQ(p.volumes["ext"].name, "ext");
  EXPECT_TRUE(p.volumes["ext"].external);
  EXPECT_EQ(p.volumes["named"].name, "custom");
  EXPECT_EQ(p.networks["front"].ipam[0].subnet, "10.5.0.0/24");
  EXPECT_EQ(p.networks["shared"].name, "hostnet");
  EXPECT_EQ(p.networks["default"].name, "myapp_default");
  EXPECT_EQ(p.secrets["pw"].file, "/proj/myapp/pw.txt");
  EXPECT_EQ(p.secrets["tok"].environment, "TOKEN");
  EXPECT_EQ(ErrorOf("services:\n  s: {image: a}\nsecrets:\n  pw: {file: a, environment: B}\n"),
            "/proj/myapp/compose.yaml:4:7: secrets.pw: needs exactly one of file, environment, external");
}

TEST(ComposeLoad, DocumentErrors) {
  EXPECT_EQ(ErrorOf("services:\n  s: {image: a\n"),
            "/proj/myapp/compose.yaml:3:1: invalid YAML: end of map flow not found");
  EXPECT_EQ(ErrorOf("- a\n- b\n"), "/proj/myapp/compose.yaml:1:1: (top level): a compose file is a mapping, not a sequence");
  EXPECT_EQ(ErrorOf("services:\n  s: {image: a}\n  s: {image: b}\n"),
            "/proj/myapp/compose.yaml:3:3: mapping key \"s\" already defined");
  EXPECT_EQ(ErrorOf("name: x\n"), "/proj/myapp/compose.yaml: no service defined (services: is empty or missing)");
  EXPECT_EQ(ErrorOf(""), "/proj/myapp/compose.yaml: empty compose file");
}

// --- config output -------------------------------------------------------------------

TEST(ComposeConfig, YamlAndJsonOfASmallProject) {
  auto p = MustLoad("services:\n  db:\n    image: postgres\n    environment: {POSTGRES_PASSWORD: example}\n    volumes: "
                    "[\"db-data:/var/lib/postgresql/data\"]\n  web:\n    build: .\n    ports: [\"8080:80\"]\n    "
                    "depends_on: [db]\nvolumes: {db-data: {}}\n");
  EXPECT_EQ(ConfigYaml(p),
            "name: myapp\n"
            "services:\n"
            "  db:\n"
            "    environment:\n"
            "      POSTGRES_PASSWORD: example\n"
            "    image: postgres\n"
            "    networks:\n"
            "      default: null\n"
            "    volumes:\n"
            "      - type: volume\n"
            "        source: db-data\n"
            "        target: /var/lib/postgresql/data\n"
            "        volume: {}\n"
            "  web:\n"
            "    build:\n"
            "      context: /proj/myapp\n"
            "      dockerfile: Dockerfile\n"
            "    depends_on:\n"
            "      db:\n"
            "        condition: service_started\n"
            "        required: true\n"
            "    networks:\n"
            "      default: null\n"
            "    ports:\n"
            "      - mode: ingress\n"
            "        target: 80\n"
            "        published: \"8080\"\n"
            "        protocol: tcp\n"
            "networks:\n"
            "  default:\n"
            "    name: myapp_default\n"
            "volumes:\n"
            "  db-data:\n"
            "    name: myapp_db-data\n");
  auto j = ConfigJson(p);
  EXPECT_EQ(j["services"]["web"]["ports"][0]["target"], 80);
  EXPECT_EQ(j["services"]["web"]["ports"][0]["published"], "8080");
  EXPECT_EQ(j["services"]["web"]["depends_on"]["db"]["required"], true);
  EXPECT_TRUE(j["services"]["db"]["networks"]["default"].is_null());
}

// The printed config loads again to the same project (a fixed point).
TEST(ComposeConfig, OutputLoadsBackToTheSameProject) {
  for (const char* name : {"course", "forms"}) {
    std::string dir = test::TestdataDir() + "/compose/" + name;
    Fixture fx;
    ASSERT_TRUE(fx.AddCase(dir)) << dir;
    auto first = Load(fx.Options());
    ASSERT_TRUE(first) << first.error().message();
    std::string printed = ConfigYaml(first->project);
    Fixture again;
    again.files["/proj/myapp/compose.yaml"] = printed;
    again.files["/proj/myapp/app.env"] = "FROM_FILE=1\n";
    auto second = Load(again.Options());
    ASSERT_TRUE(second) << second.error().message() << "\n" << printed;
    EXPECT_EQ(ConfigYaml(second->project), printed) << name;
  }
}

// Golden: testdata/compose/<case>/compose.yaml (+ env as .env) -> config.yaml and warnings.txt.
TEST(ComposeConfig, Golden) {
  for (const char* name : {"course", "forms"}) {
    std::string dir = test::TestdataDir() + "/compose/" + name;
    Fixture fx;
    ASSERT_TRUE(fx.AddCase(dir)) << dir;
    fx.env = {{"HOME", "/home/user"}, {"WEB_PORT", "8088"}};
    auto o = fx.Options();
    o.profiles = {"tools"};
    auto r = Load(o);
    ASSERT_TRUE(r) << r.error().message();
    test::ExpectGolden(dir + "/config.yaml", ConfigYaml(r->project));
    std::string warnings;
    for (const auto& w : r->warnings)
      warnings += w + "\n";
    test::ExpectGolden(dir + "/warnings.txt", warnings);
  }
}

}  // namespace
}  // namespace kiln::compose
