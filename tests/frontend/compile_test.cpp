#include "kiln/containerfile.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "instructions.h"
#include "kiln/fs.h"
#include "support/golden.h"
#include "support/testdata.h"

namespace kiln::frontend {
namespace {

using nlohmann::json;

/// A resolver over a fixed table, recording the calls.
struct FakeResolver {
  std::map<std::string, BaseImageInfo> images;
  std::vector<std::string> calls;
  ResolveBaseFn Fn() {
    return [this](const std::string& ref, const Platform& p) -> Expected<BaseImageInfo> {
      calls.push_back(ref + "@" + p.str());
      auto it = images.find(ref);
      if (it == images.end())
        return Error(Errc::kNotFound, "image " + ref + " not found");
      return it->second;
    };
  }
};

CompileOptions Defaults() {
  CompileOptions o;
  o.target_platform = {"linux", "amd64"};
  o.build_platform = {"linux", "amd64"};
  return o;
}

Expected<BuildGraph> CompileText(std::string_view text, const CompileOptions& opts = Defaults()) {
  auto file = ParseContainerfile(text, "Containerfile");
  if (!file)
    return file.error();
  return Compile(*file, opts);
}

std::string ErrorOf(std::string_view text, const CompileOptions& opts = Defaults()) {
  auto g = CompileText(text, opts);
  if (g)
    return "<no error>";
  return g.error().message();
}

template <typename T>
const T& Op(const Step& s) {
  return std::get<T>(s.op);
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// ---------------------------------------------------------------- AST-level

Instruction Ins(std::string kw, std::vector<std::string> args, std::vector<std::string> flags = {}, int line = 1) {
  Instruction i;
  i.keyword = std::move(kw);
  i.args = std::move(args);
  i.flags = std::move(flags);
  i.start_line = i.end_line = line;
  i.original = i.keyword;
  return i;
}

TEST(CompileAstTest, BuildsFromAStructDirectly) {
  File f;
  f.filename = "Containerfile";
  f.instructions.push_back(Ins("from", {"scratch", "AS", "Base"}, {}, 1));
  f.instructions.push_back(Ins("copy", {"a", "b/"}, {"--chmod=0644"}, 2));
  f.instructions.push_back(Ins("from", {"base"}, {}, 3));
  auto g = Compile(f, Defaults());
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->stages.size(), 2u);
  EXPECT_EQ(g->stages[0].name, "base");
  EXPECT_EQ(g->stages[1].base.kind, StageBase::Kind::kStage);
  EXPECT_EQ(g->stages[1].base.stage, 0);
  const auto& c = Op<CopyStep>(g->stages[0].steps[0]);
  EXPECT_EQ(c.dest, "/b/");
  EXPECT_EQ(c.chmod, "0644");
  EXPECT_EQ(g->target, 1);
}

TEST(CompileAstTest, UnknownFlagNamesInstructionAndLine) {
  File f;
  f.filename = "Containerfile";
  f.instructions.push_back(Ins("from", {"scratch"}, {}, 1));
  f.instructions.push_back(Ins("copy", {"a", "b"}, {"--foo=1"}, 2));
  auto g = Compile(f, Defaults());
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().message(), "Containerfile:2: unknown flag --foo for COPY (did you mean from?)");
  EXPECT_EQ(g.error().code(), Errc::kInvalidInput);
}

// ---------------------------------------------------------------- stages

TEST(CompileTest, ScratchStage) {
  auto g = CompileText("FROM scratch\nCOPY a /b\n");
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->stages.size(), 1u);
  EXPECT_EQ(g->stages[0].base.kind, StageBase::Kind::kScratch);
  const Step& s = g->stages[0].steps[0];
  EXPECT_EQ(s.kind, StepKind::kCopy);
  EXPECT_FALSE(s.empty_layer);
  EXPECT_EQ(s.location.line, 2);
  EXPECT_EQ(Op<CopyStep>(s).from.kind, CopySource::Kind::kContext);
  EXPECT_EQ(Op<CopyStep>(s).sources, std::vector<std::string>{"a"});
}

TEST(CompileTest, ImageBaseIsNormalizedAndResolved) {
  FakeResolver r;
  r.images["docker.io/library/alpine:3.20"] = {{"PATH=/bin", "A=1"}, "/srv", "nobody", {}, std::nullopt, "sha256:abc", ""};
  auto o = Defaults();
  o.resolve_base = r.Fn();
  auto g = CompileText("FROM alpine:3.20\nRUN echo $A\nENV B=$A\n", o);
  ASSERT_TRUE(g) << g.error().message();
  const Stage& st = g->stages[0];
  EXPECT_EQ(st.base.image, "docker.io/library/alpine:3.20");
  EXPECT_EQ(st.base.written, "alpine:3.20");
  EXPECT_EQ(st.base.digest, "sha256:abc");
  EXPECT_EQ(r.calls, std::vector<std::string>{"docker.io/library/alpine:3.20@linux/amd64"});
  const auto& run = Op<RunStep>(st.steps[0]);
  EXPECT_EQ(run.command, "echo $A");  // RUN is not expanded by the builder
  EXPECT_EQ(run.argv, (std::vector<std::string>{"/bin/sh", "-c", "echo $A"}));
  EXPECT_EQ(run.env, (std::vector<std::string>{"PATH=/bin", "A=1"}));
  EXPECT_EQ(run.workdir, "/srv");
  EXPECT_EQ(run.user, "nobody");
  EXPECT_EQ(Op<EnvStep>(st.steps[1]).vars[0].second, "1");
  EXPECT_EQ(st.config.env, (std::vector<std::string>{"PATH=/bin", "A=1", "B=1"}));
}

TEST(CompileTest, ResolverErrorGetsFromLocation) {
  FakeResolver r;
  auto o = Defaults();
  o.resolve_base = r.Fn();
  auto g = CompileText("\nFROM nothere\n", o);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code(), Errc::kNotFound);
  EXPECT_EQ(g.error().message(), "Containerfile:2: FROM nothere: image docker.io/library/nothere:latest not found");
}

TEST(CompileTest, DefaultPathIsAdded) {
  auto g = CompileText("FROM scratch\nRUN x\n");
  ASSERT_TRUE(g);
  EXPECT_EQ(Op<RunStep>(g->stages[0].steps[0]).env,
            std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
}

TEST(CompileTest, StageNamesAreCaseInsensitive) {
  auto g = CompileText("FROM scratch AS Builder\nFROM BUILDER\nCOPY --from=bUiLdEr /a /b\n");
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->stages.size(), 2u);
  EXPECT_EQ(g->stages[0].name, "builder");
  EXPECT_EQ(g->stages[1].base.kind, StageBase::Kind::kStage);
  EXPECT_EQ(Op<CopyStep>(g->stages[1].steps[0]).from.stage, 0);
}

TEST(CompileTest, FromLaterStageNameIsAnImageWithWarning) {
  auto g = CompileText("FROM later\nFROM scratch AS later\nCOPY a b\n", [] {
    auto o = Defaults();
    o.target = "";
    return o;
  }());
  ASSERT_TRUE(g) << g.error().message();
  // The target (last stage) does not need stage 0, so only a warning.
  ASSERT_EQ(g->stages.size(), 1u);
  ASSERT_EQ(g->warnings.size(), 1u);
  EXPECT_NE(g->warnings[0].find("is defined later in the file"), std::string::npos);
}

// ---------------------------------------------------------------- ARG scoping

TEST(CompileTest, GlobalArgInFromAndBuildArgOverride) {
  const char* text = "ARG TAG=3.19\nFROM alpine:$TAG\n";
  auto g = CompileText(text);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->stages[0].base.image, "docker.io/library/alpine:3.19");
  EXPECT_EQ(g->global_args, (std::vector<std::pair<std::string, std::string>>{{"TAG", "3.19"}}));
  auto o = Defaults();
  o.build_args["TAG"] = "3.20";
  g = CompileText(text, o);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->stages[0].base.image, "docker.io/library/alpine:3.20");
  EXPECT_TRUE(g->warnings.empty());
}

TEST(CompileTest, GlobalArgNeedsRedeclarationInsideStage) {
  auto g = CompileText("ARG V=1\nFROM scratch\nENV X=$V\nARG V\nENV Y=$V\n");
  ASSERT_TRUE(g) << g.error().message();
  const auto& steps = g->stages[0].steps;
  EXPECT_EQ(Op<EnvStep>(steps[0]).vars[0].second, "");
  EXPECT_EQ(Op<ArgStep>(steps[1]).args[0].value, std::optional<std::string>("1"));
  EXPECT_EQ(Op<EnvStep>(steps[2]).vars[0].second, "1");
}

TEST(CompileTest, StageArgsDoNotCrossFrom) {
  auto g = CompileText("FROM scratch AS a\nARG X=1\nFROM a\nENV Y=${X:-unset}\n");
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(Op<EnvStep>(g->stages[1].steps[0]).vars[0].second, "unset");
}

TEST(CompileTest, StageArgDefaultThenBuildArg) {
  const char* text = "FROM scratch\nARG A=def B\nCOPY $A $B /\n";
  EXPECT_EQ(ErrorOf(text), "Containerfile:3: COPY source $B is empty after expansion");
  auto o = Defaults();
  o.build_args = {{"A", "x"}, {"B", "y"}};
  auto g = CompileText(text, o);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(Op<CopyStep>(g->stages[0].steps[1]).sources, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(g->stages[0].steps[0].created_by, "ARG A=x B=y");
}

TEST(CompileTest, EnvWinsOverArg) {
  auto g = CompileText("FROM scratch\nARG V=arg\nENV V=env\nARG V=arg2\nWORKDIR /$V\nRUN true\n");
  ASSERT_TRUE(g) << g.error().message();
  const auto& steps = g->stages[0].steps;
  EXPECT_EQ(Op<WorkdirStep>(steps[3]).path, "/env");
  const auto& run = Op<RunStep>(steps[4]);
  EXPECT_TRUE(run.args.empty());  // shadowed by ENV
  EXPECT_TRUE(Contains(run.env, "V=env"));
}

TEST(CompileTest, RunGetsArgsAndHistoryLine) {
  auto g = CompileText("FROM scratch\nARG A=1\nARG B\nRUN make\n");
  ASSERT_TRUE(g) << g.error().message();
  const Step& s = g->stages[0].steps[2];
  EXPECT_EQ(Op<RunStep>(s).args, std::vector<std::string>{"A=1"});
  EXPECT_EQ(s.created_by, "RUN |1 A=1 /bin/sh -c make # buildkit");
}

TEST(CompileTest, ValuesOfOneInstructionSeeThePreviousEnvironment) {
  auto g = CompileText("FROM scratch\nENV A=1\nENV A=2 B=$A\n");
  ASSERT_TRUE(g);
  EXPECT_EQ(Op<EnvStep>(g->stages[0].steps[1]).vars[1].second, "1");
}

// ---------------------------------------------------------------- platforms

TEST(CompileTest, AutomaticPlatformArgs) {
  auto o = Defaults();
  o.target_platform = {"linux", "arm", "v7"};
  o.build_platform = {"linux", "amd64"};
  auto g = CompileText(
      "FROM --platform=$BUILDPLATFORM scratch AS build\n"
      "ARG TARGETPLATFORM TARGETARCH TARGETVARIANT BUILDOS\n"
      "ENV T=$TARGETPLATFORM A=$TARGETARCH V=$TARGETVARIANT B=$BUILDOS\n"
      "FROM scratch\nCOPY --from=build /x /x\nENV T=${TARGETARCH:-none}\n",
      o);
  ASSERT_TRUE(g) << g.error().message();
  const Stage& build = g->stages[0];
  EXPECT_EQ(build.platform.str(), "linux/amd64");
  const auto& env = Op<EnvStep>(build.steps[1]).vars;
  EXPECT_EQ(env[0].second, "linux/arm/v7");
  EXPECT_EQ(env[1].second, "arm");
  EXPECT_EQ(env[2].second, "v7");
  EXPECT_EQ(env[3].second, "linux");
  EXPECT_EQ(g->stages[1].platform.str(), "linux/arm/v7");
  EXPECT_EQ(Op<EnvStep>(g->stages[1].steps[1]).vars[0].second, "none");  // not declared in this stage
  EXPECT_EQ(g->global_args, (std::vector<std::pair<std::string, std::string>>{
                                {"BUILDPLATFORM", "linux/amd64"}, {"BUILDOS", "linux"},
                                {"TARGETPLATFORM", "linux/arm/v7"}, {"TARGETARCH", "arm"},
                                {"TARGETVARIANT", "v7"}}));
}

TEST(CompileTest, GlobalRedeclarationKeepsAutomaticValue) {
  auto o = Defaults();
  o.target_platform = {"linux", "arm64"};
  auto g = CompileText("ARG TARGETARCH\nFROM scratch AS x-$TARGETARCH\nARG TARGETARCH\nENV A=$TARGETARCH\n", o);
  ASSERT_FALSE(g);  // stage names are not expanded: x-$TARGETARCH is invalid
  g = CompileText("ARG TARGETARCH\nFROM alpine:$TARGETARCH\nARG TARGETARCH\nENV A=$TARGETARCH\n", o);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->stages[0].base.image, "docker.io/library/alpine:arm64");
  EXPECT_EQ(Op<EnvStep>(g->stages[0].steps[1]).vars[0].second, "arm64");
}

TEST(CompileTest, FromPlatformFlagIsExpandedAndPassedToResolver) {
  FakeResolver r;
  r.images["docker.io/library/alpine:latest"] = {};
  auto o = Defaults();
  o.resolve_base = r.Fn();
  auto g = CompileText("ARG P=linux/arm64\nFROM --platform=$P alpine\n", o);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->stages[0].platform.str(), "linux/arm64");
  EXPECT_EQ(r.calls, std::vector<std::string>{"docker.io/library/alpine:latest@linux/arm64"});
}

// ---------------------------------------------------------------- build args

TEST(CompileTest, ProxyArgsReachRunButNotHistory) {
  auto o = Defaults();
  o.build_args = {{"HTTP_PROXY", "http://proxy:3128"}, {"UNUSED", "1"}};
  auto g = CompileText("FROM scratch\nRUN curl x\n", o);
  ASSERT_TRUE(g) << g.error().message();
  const Step& s = g->stages[0].steps[0];
  // Both spellings, as BuildKit (solver/llbsolver/ops/exec.go proxyEnvList).
  EXPECT_EQ(s.proxy_env, (std::vector<std::string>{"HTTP_PROXY=http://proxy:3128", "http_proxy=http://proxy:3128"}));
  EXPECT_EQ(s.created_by, "RUN /bin/sh -c curl x # buildkit");
  EXPECT_TRUE(Op<RunStep>(s).args.empty());
  ASSERT_EQ(g->warnings.size(), 1u);
  EXPECT_EQ(g->warnings[0], "one or more build args were not consumed: UNUSED");
  EXPECT_EQ(StepCacheJson(s).dump().find("proxy"), std::string::npos);
}

TEST(CompileTest, BuildArgsOfPrunedStagesAreNotConsumed) {
  auto o = Defaults();
  o.build_args = {{"X", "1"}};
  o.target = "b";
  auto g = CompileText("FROM scratch AS a\nARG X\nFROM scratch AS b\n", o);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->warnings.size(), 1u);
  EXPECT_EQ(g->warnings[0], "one or more build args were not consumed: X");
}

TEST(CompileTest, SourceDateEpochBuildArgIsConsumedByTheBuild) {
  // BuildKit reads --build-arg SOURCE_DATE_EPOCH for the image's timestamps even
  // when no ARG declares it, so it is never reported as unused; others still are.
  auto o = Defaults();
  o.build_args = {{"SOURCE_DATE_EPOCH", "1700000000"}, {"OTHER", "1"}};
  auto g = CompileText("FROM scratch\nCOPY a /a\n", o);
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->warnings.size(), 1u);
  EXPECT_EQ(g->warnings[0], "one or more build args were not consumed: OTHER");
}

// ---------------------------------------------------------------- target & deps

const char* kThreeStages =
    "FROM scratch AS base\nCOPY a /a\n"
    "FROM base AS build\nCOPY b /b\n"
    "FROM scratch AS other\nCOPY c /c\n"
    "FROM scratch AS final\nCOPY --from=build /b /b\n";

TEST(CompileTest, TargetPrunesUnreachableStages) {
  auto g = CompileText(kThreeStages);
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->stages.size(), 3u);  // "other" is gone
  EXPECT_EQ(g->stages[0].name, "base");
  EXPECT_EQ(g->stages[1].name, "build");
  EXPECT_EQ(g->stages[2].name, "final");
  EXPECT_EQ(g->stages[2].source_index, 3);
  EXPECT_EQ(g->stages[2].deps, std::vector<int>{1});
  EXPECT_EQ(g->stages[1].deps, std::vector<int>{0});
  EXPECT_EQ(Op<CopyStep>(g->stages[2].steps[0]).from.stage, 1);
  auto o = Defaults();
  o.target = "OTHER";
  g = CompileText(kThreeStages, o);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->stages.size(), 1u);
  EXPECT_EQ(g->stages[0].name, "other");
  EXPECT_EQ(g->target, 0);
}

TEST(CompileTest, TargetNotFound) {
  auto o = Defaults();
  o.target = "nope";
  EXPECT_EQ(ErrorOf(kThreeStages, o),
            "Containerfile: target stage \"nope\" could not be found (stages: base, build, other, final)");
  EXPECT_EQ(ErrorOf("FROM scratch\n", o),
            "Containerfile: target stage \"nope\" could not be found (the file has no named stages)");
}

TEST(CompileTest, CopyFromIndexNameImageAndContext) {
  auto o = Defaults();
  o.build_contexts = {{"src", "/some/dir"}, {"tools", "docker-image://busybox:1.36"}};
  auto g = CompileText(
      "FROM scratch AS a\nFROM scratch\n"
      "COPY --from=0 /x /1\nCOPY --from=a /x /2\nCOPY --from=alpine:3 /x /3\n"
      "COPY --from=src /x /4\nCOPY --from=tools /x /5\n",
      o);
  ASSERT_TRUE(g) << g.error().message();
  const auto& steps = g->stages[1].steps;
  EXPECT_EQ(Op<CopyStep>(steps[0]).from.kind, CopySource::Kind::kStage);
  EXPECT_EQ(Op<CopyStep>(steps[0]).from.stage, 0);
  EXPECT_EQ(Op<CopyStep>(steps[1]).from.stage, 0);
  EXPECT_EQ(Op<CopyStep>(steps[2]).from.kind, CopySource::Kind::kImage);
  EXPECT_EQ(Op<CopyStep>(steps[2]).from.image, "docker.io/library/alpine:3");
  EXPECT_EQ(Op<CopyStep>(steps[3]).from.kind, CopySource::Kind::kNamedContext);
  EXPECT_EQ(Op<CopyStep>(steps[3]).from.name, "src");
  EXPECT_EQ(Op<CopyStep>(steps[4]).from.image, "docker.io/library/busybox:1.36");
  EXPECT_EQ(g->stages[1].deps, std::vector<int>{0});
}

TEST(CompileTest, CopyFromUnknownBareNameIsImageWithWarning) {
  auto g = CompileText("FROM scratch AS builder\nFROM scratch\nCOPY --from=buidler /x /x\n");
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->warnings.size(), 1u);
  EXPECT_EQ(g->warnings[0],
            "Containerfile:3: COPY --from=buidler: no stage named \"buidler\"; using the image "
            "docker.io/library/buidler:latest");
}

TEST(CompileTest, CopyFromALaterStageIsAnError) {
  // BuildKit builds stages in file order: a reference further down fails.
  auto app = [] {
    auto o = Defaults();
    o.target = "app";
    return o;
  }();
  EXPECT_EQ(ErrorOf("FROM scratch AS app\nCOPY --from=tool /t /t\nFROM scratch AS tool\nCOPY t /t\n", app),
            "Containerfile:2: COPY --from=tool: cannot copy from stage \"tool\", it needs to be defined before "
            "current stage \"app\"");
  EXPECT_EQ(ErrorOf("FROM scratch AS a\nRUN --mount=from=1,target=/t true\nFROM scratch\nFROM a\n"),
            "Containerfile:2: RUN --mount from=1: cannot mount from stage \"stage-1\", stage needs to be "
            "defined before current command");
  // A stage the target does not build may name a later one.
  auto tool = app;
  tool.target = "tool";
  EXPECT_TRUE(CompileText("FROM scratch AS app\nCOPY --from=tool /t /t\nFROM scratch AS tool\nCOPY t /t\n", tool));
}

TEST(CompileTest, TargetStageArg) {
  const char* file = "FROM scratch AS a\nARG TARGETSTAGE\nENV T=$TARGETSTAGE\nFROM a AS b\nFROM a\n";
  auto env_of = [](const BuildGraph& g, int stage) {
    for (const auto& e : g.stages[static_cast<size_t>(stage)].config.env)
      if (e.rfind("T=", 0) == 0)
        return e;
    return std::string();
  };
  auto g = CompileText(file);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(env_of(*g, g->target), "T=default");
  auto o = Defaults();
  o.target = "B";
  g = CompileText(file, o);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(env_of(*g, g->target), "T=b");
  g = CompileText("FROM scratch AS last\nARG TARGETSTAGE\nENV T=$TARGETSTAGE\n");
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(env_of(*g, g->target), "T=last");
}

TEST(CompileTest, BuildArgValueSkipsTheDefault) {
  auto o = Defaults();
  o.build_args = {{"G", "g"}, {"L", "l"}};
  auto g = CompileText("ARG G=${NOPE:?unset}\nFROM scratch\nARG G\nARG L=${NOPE:?unset}\nENV V=\"$G $L\"\n", o);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->stages[0].config.env.back(), "V=g l");
  EXPECT_EQ(ErrorOf("FROM scratch\nARG L=${NOPE:?unset}\n"),
            "Containerfile:2: failed to process \"${NOPE:?unset}\": NOPE: unset");
}

TEST(CompileTest, StageErrors) {
  EXPECT_EQ(ErrorOf("FROM scratch AS a\nCOPY --from=a /x /y\n"),
            "Containerfile:2: circular dependency detected on stage: a (COPY --from=a refers to the stage itself)");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --from=0 /x /y\n"),
            "Containerfile:2: circular dependency detected on stage: stage-0 (COPY --from=0 refers to the stage "
            "itself)");
  EXPECT_EQ(ErrorOf("FROM scratch AS a\nCOPY --from=b /x /y\nFROM scratch AS b\nCOPY --from=a /x /y\n"),
            "Containerfile:4: circular dependency detected on stage: a (a -> b -> a)");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --from=3 /x /y\n"),
            "Containerfile:2: COPY --from=3: invalid stage index 3 (the file has 1 stage)");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --from=Not_An/Image! /x /y\n"),
            "Containerfile:2: COPY --from=Not_An/Image!: no stage named \"Not_An/Image!\" (stages: none named) "
            "and not a valid image reference");
  EXPECT_EQ(ErrorOf("FROM scratch AS a\nFROM scratch AS A\n"),
            "Containerfile:2: duplicate stage name \"a\" (also at line 1)");
  EXPECT_EQ(ErrorOf("FROM scratch AS 1abc\n"),
            "Containerfile:1: invalid name for build stage: \"1abc\", name can't start with a number or contain "
            "symbols");
  EXPECT_EQ(ErrorOf("FROM scratch AS\n").find("Containerfile:1: FROM requires either one or three arguments"), 0u);
  EXPECT_EQ(ErrorOf("ENV A=1\nFROM scratch\n"),
            "Containerfile:1: ENV before the first FROM: no build stage in current context (only ARG may come "
            "before FROM)");
  EXPECT_EQ(ErrorOf("ARG A\n"), "Containerfile:1: no build stage in context: the file has no FROM instruction");
}

TEST(CompileTest, UndefinedArgInFrom) {
  EXPECT_EQ(ErrorOf("FROM $IMAGE\n"),
            "Containerfile:1: base name ($IMAGE) should not be blank (not set: IMAGE; give it a value with an ARG "
            "before the first FROM or --build-arg)");
  EXPECT_EQ(ErrorOf("ARG IMAGE\nFROM ${IMAGE}\n").find("Containerfile:2: base name (${IMAGE}) should not be blank"),
            0u);
  EXPECT_EQ(ErrorOf("FROM alpine:$TAG\n").find("Containerfile:1: FROM alpine:: "), 0u);
  // A stage ARG does not count for FROM.
  EXPECT_NE(ErrorOf("FROM scratch\nARG B=x\nFROM $B\n"), "<no error>");
}

TEST(CompileTest, FlagErrors) {
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --foo a b\n"), "Containerfile:2: unknown flag --foo for COPY (did you mean from?)");
  EXPECT_EQ(ErrorOf("FROM scratch\nADD --from=x a b\n"), "Containerfile:2: unknown flag --from for ADD");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --parents=maybe a b\n"),
            "Containerfile:2: flag --parents for COPY: invalid boolean \"maybe\"");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --chown a b\n"), "Containerfile:2: flag --chown for COPY needs a value");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --from=a --from=b a b\n"),
            "Containerfile:2: flag --from for COPY was given more than once");
  EXPECT_EQ(ErrorOf("FROM --plat=x scratch\n"), "Containerfile:1: unknown flag --plat for FROM");
  EXPECT_EQ(ErrorOf("FROM scratch\nENV --x=1 A=b\n").find("Containerfile:2: unknown flag --x for ENV"), 0u);
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --network=bridge true\n"),
            "Containerfile:2: RUN --network=bridge: must be default, none or host");
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --security=root true\n"),
            "Containerfile:2: RUN --security=root: must be sandbox or insecure");
}

// ------------------------------------------- from BuildKit's tests (testdata/buildkit)

TEST(CompileTest, BuildKitParityHintsHeredocsAndScratchContext) {
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=typ=tmpfs true\n"),
            "Containerfile:2: RUN --mount=typ=tmpfs: unexpected key 'typ' (did you mean type?)");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY /foo <<EOF\nEOF\n"),
            "Containerfile:2: COPY cannot accept a heredoc as a destination");
  // An ONBUILD trigger keeps its heredoc, so that it parses again in a child.
  auto g = CompileText("FROM scratch\nONBUILD RUN <<EOF\necho hi\nEOF\n");
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->stages[0].config.onbuild, (std::vector<std::string>{"RUN <<EOF\necho hi\nEOF"}));
  auto o = Defaults();
  o.build_contexts = {{"busybox", "docker-image://scratch"}};
  auto s = CompileText("FROM busybox\nCOPY <<EOF /out\nhi\nEOF\n", o);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->stages[0].base.kind, StageBase::Kind::kScratch);
}

// ---------------------------------------------------------------- ONBUILD

TEST(CompileTest, OnbuildOfAStageBaseIsInserted) {
  auto g = CompileText(
      "FROM scratch AS base\nONBUILD COPY --from=tools /t /t\nONBUILD RUN echo child\n"
      "FROM scratch AS tools\n"
      "FROM base\nRUN echo mine\n");
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->stages.size(), 3u);
  const Stage& base = g->stages[0];
  EXPECT_EQ(base.config.onbuild, (std::vector<std::string>{"COPY --from=tools /t /t", "RUN echo child"}));
  EXPECT_EQ(base.steps.size(), 2u);
  EXPECT_EQ(base.steps[0].kind, StepKind::kOnbuild);
  EXPECT_TRUE(base.steps[0].empty_layer);
  const Stage& child = g->stages[2];
  ASSERT_EQ(child.steps.size(), 3u);
  EXPECT_TRUE(child.steps[0].from_onbuild);
  EXPECT_EQ(child.steps[0].location.line, 5);
  EXPECT_EQ(Op<CopyStep>(child.steps[0]).from.stage, 1);
  EXPECT_EQ(Op<RunStep>(child.steps[1]).command, "echo child");
  EXPECT_FALSE(child.steps[2].from_onbuild);
  EXPECT_TRUE(child.config.onbuild.empty());  // triggers run once
  EXPECT_EQ(child.deps, (std::vector<int>{0, 1}));
}

TEST(CompileTest, OnbuildOfAnImageBaseIsParsedAndInserted) {
  FakeResolver r;
  r.images["docker.io/library/onb:latest"] = {{}, "/app", "", {"COPY . /app/src", "RUN make"}, std::nullopt, "", ""};
  auto o = Defaults();
  o.resolve_base = r.Fn();
  auto g = CompileText("FROM onb\nRUN ls\n", o);
  ASSERT_TRUE(g) << g.error().message();
  const auto& steps = g->stages[0].steps;
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_TRUE(steps[0].from_onbuild);
  EXPECT_EQ(Op<CopyStep>(steps[0]).dest, "/app/src");
  EXPECT_EQ(Op<RunStep>(steps[1]).command, "make");
  EXPECT_EQ(steps[1].location.line, 1);

  // A trigger may name a stage that is built before; it becomes a dependency.
  r.images["docker.io/library/onb:latest"].onbuild = {"COPY --from=tools /t /t", "RUN --mount=from=tools,target=/m x"};
  g = CompileText("FROM scratch AS tools\nFROM onb\nCOPY --from=tools /u /u\n", o);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->stages[1].deps, std::vector<int>{0});
  EXPECT_EQ(Op<CopyStep>(g->stages[1].steps[0]).from.stage, 0);
  EXPECT_EQ(Op<RunStep>(g->stages[1].steps[1]).mounts[0].from->stage, 0);
  // A stage only a trigger names is built too (the base image's triggers
  // are read for every stage in the build, BuildKit's testOnBuildNewDeps).
  g = CompileText("FROM scratch AS tools\nFROM onb\n", o);
  ASSERT_TRUE(g) << g.error().message();
  ASSERT_EQ(g->stages.size(), 2u);
  EXPECT_EQ(g->stages[1].deps, std::vector<int>{0});
  EXPECT_EQ(Op<RunStep>(g->stages[1].steps[1]).mounts[0].from->stage, 0);
  // A stage further down is an error, as for any reference.
  EXPECT_EQ(ErrorOf("FROM onb\nFROM scratch AS tools\nCOPY --from=0 / /\n", o).find("Containerfile:1: COPY --from=tools: "
                                                                                   "cannot copy from stage \"tools\""),
            0u) << ErrorOf("FROM onb\nFROM scratch AS tools\nCOPY --from=0 / /\n", o);
  r.images["docker.io/library/onb:latest"].onbuild = {"COPY --bogus a b"};
  EXPECT_EQ(ErrorOf("FROM scratch\nFROM onb\n", o), "Containerfile:2: ONBUILD trigger COPY: unknown flag --bogus for COPY");

  r.images["docker.io/library/onb:latest"].onbuild = {"FROM x"};
  EXPECT_EQ(ErrorOf("FROM onb\n", o), "Containerfile:1: FROM isn't allowed as an ONBUILD trigger");
}

// ---------------------------------------------------------------- RUN --mount

TEST(CompileTest, MountsAreParsedWithDefaults) {
  auto g = CompileText(
      "FROM scratch AS deps\nFROM scratch\nWORKDIR /src\n"
      "RUN --mount=type=cache,target=.cache,sharing=locked,uid=1000 "
      "--mount=type=secret,id=tok,required "
      "--mount=type=ssh --mount=type=ssh,id=gh "
      "--mount=from=deps,source=/out,target=/deps,rw "
      "--mount=type=tmpfs,target=/tmp,size=64m "
      "--mount=type=bind,target=/ctx true\n");
  ASSERT_TRUE(g) << g.error().message();
  const auto& m = Op<RunStep>(g->stages[1].steps[1]).mounts;
  ASSERT_EQ(m.size(), 7u);
  EXPECT_EQ(m[0].type, MountType::kCache);
  EXPECT_EQ(m[0].target, "/src/.cache");
  EXPECT_EQ(m[0].id, "/src/.cache");
  EXPECT_EQ(m[0].sharing, CacheSharing::kLocked);
  EXPECT_EQ(m[0].uid, 1000);
  EXPECT_EQ(m[0].mode, 0755u);
  EXPECT_FALSE(m[0].read_only);
  EXPECT_EQ(m[1].type, MountType::kSecret);
  EXPECT_EQ(m[1].target, "/run/secrets/tok");
  EXPECT_TRUE(m[1].required);
  EXPECT_EQ(m[1].mode, 0400u);
  EXPECT_EQ(m[2].target, "/run/buildkit/ssh_agent.0");
  EXPECT_EQ(m[2].id, "default");
  EXPECT_EQ(m[3].target, "/run/buildkit/ssh_agent.1");
  EXPECT_EQ(m[3].id, "gh");
  EXPECT_EQ(m[4].type, MountType::kBind);
  ASSERT_TRUE(m[4].from);
  EXPECT_EQ(m[4].from->stage, 0);
  EXPECT_EQ(m[4].source, "/out");
  EXPECT_FALSE(m[4].read_only);
  EXPECT_EQ(m[5].size, 64 * 1024 * 1024);
  EXPECT_TRUE(m[6].read_only);
  EXPECT_FALSE(m[6].from);
  EXPECT_EQ(g->stages[1].deps, std::vector<int>{0});
}

TEST(CompileTest, MountValuesAreExpanded) {
  auto g = CompileText("FROM scratch\nARG ID=c1\nRUN --mount=type=cache,id=$ID,target=/c true\n");
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(Op<RunStep>(g->stages[0].steps[1]).mounts[0].id, "c1");
}

TEST(CompileTest, MountErrors) {
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=type=nfs,target=/x true\n"),
            "Containerfile:2: RUN --mount=type=nfs,target=/x: unsupported mount type \"nfs\" (want bind, cache, "
            "tmpfs, secret or ssh)");
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=type=cache,target=/x,colour=red true\n"),
            "Containerfile:2: RUN --mount=type=cache,target=/x,colour=red: unexpected key 'colour'");
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=type=cache true\n"),
            "Containerfile:2: RUN --mount=type=cache: a type=cache mount needs a target");
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=type=secret true\n"),
            "Containerfile:2: RUN --mount=type=secret: a type=secret mount needs an id or a target");
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=type=tmpfs,target=/t,from=x true\n"),
            "Containerfile:2: RUN --mount=type=tmpfs,target=/t,from=x: option 'from' is not valid for a type=tmpfs "
            "mount");
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=type=cache,target=/c,sharing=all true\n"),
            "Containerfile:2: RUN --mount=type=cache,target=/c,sharing=all: invalid sharing \"all\" (want shared, "
            "private or locked)");
  EXPECT_EQ(ErrorOf("FROM scratch\nRUN --mount=type=cache,target=/c,mode=999 true\n"),
            "Containerfile:2: RUN --mount=type=cache,target=/c,mode=999: invalid mode \"999\" (want octal, e.g. "
            "0755)");
  EXPECT_EQ(ErrorOf("FROM scratch AS s\nRUN --mount=from=s,target=/x true\n"),
            "Containerfile:2: circular dependency detected on stage: s (RUN --mount from=s refers to the stage "
            "itself)");
}

// ---------------------------------------------------------------- COPY/ADD

TEST(CompileTest, CopyFlagsAndPaths) {
  auto g = CompileText(
      "FROM scratch\nWORKDIR /app\nARG U=1000\n"
      "COPY --chown=$U:$U --chmod=u+x,go-w --link --parents --exclude=*.md --exclude=.git src/ dst\n"
      "COPY a .\n"
      "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false https://x/y.tgz /opt/\n");
  ASSERT_TRUE(g) << g.error().message();
  const auto& steps = g->stages[0].steps;
  const auto& c = Op<CopyStep>(steps[2]);
  EXPECT_EQ(c.chown, "1000:1000");
  EXPECT_EQ(c.chmod, "u+x,go-w");
  EXPECT_TRUE(c.link);
  EXPECT_TRUE(c.parents);
  EXPECT_EQ(c.excludes, (std::vector<std::string>{"*.md", ".git"}));
  EXPECT_EQ(c.dest, "/app/dst");
  EXPECT_EQ(c.workdir, "/app");
  EXPECT_EQ(Op<CopyStep>(steps[3]).dest, "/app/");
  const auto& a = Op<CopyStep>(steps[4]);
  EXPECT_TRUE(a.is_add);
  EXPECT_EQ(steps[4].kind, StepKind::kAdd);
  EXPECT_EQ(a.checksum, "sha256:abc");
  EXPECT_TRUE(a.keep_git_dir);
  EXPECT_EQ(a.unpack, std::optional<bool>(false));
  EXPECT_EQ(a.sources, std::vector<std::string>{"https://x/y.tgz"});
}

TEST(CompileTest, CopyErrors) {
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --chmod=8888 a b\n"),
            "Containerfile:2: COPY --chmod=8888: invalid mode (octal like 755 or symbolic like u+x,go-w)");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --chmod=17777 a b\n"),
            "Containerfile:2: COPY --chmod=17777: mode out of range (max 7777)");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY --chmod=u+q a b\n"),
            "Containerfile:2: COPY --chmod=u+q: invalid mode (octal like 755 or symbolic like u+x,go-w)");
  EXPECT_EQ(ErrorOf("FROM scratch\nCOPY http://x/y /\n"),
            "Containerfile:2: COPY http://x/y: source can't be a URL for COPY (use ADD)");
  EXPECT_EQ(ErrorOf("FROM scratch\nADD --checksum=sha256:1 a /\n"),
            "Containerfile:2: ADD --checksum: only valid for http(s) and git sources, not a");
}

TEST(CompileTest, ChmodValidation) {
  for (const char* ok : {"755", "0644", "7777", "u+x", "a=rwx", "u=rwx,go=rx", "g+s", "o-rwx,u+X", "+x"})
    EXPECT_TRUE(ValidateChmod(ok)) << ok;
  for (const char* bad : {"", "9", "0o755", "u", "u+x,", "z+x", "u+x;g-w"})
    EXPECT_FALSE(ValidateChmod(bad)) << bad;
}

// ---------------------------------------------------------------- heredocs

TEST(CompileTest, RunHeredocs) {
  auto g = CompileText(
      "FROM scratch\n"
      "RUN <<EOF\necho $HOME\nEOF\n"
      "RUN <<-EOF\n\t#!/usr/bin/env python3\n\tprint(1)\nEOF\n"
      "RUN python3 <<EOF\nprint(2)\nEOF\n");
  ASSERT_TRUE(g) << g.error().message();
  const auto& steps = g->stages[0].steps;
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(Op<RunStep>(steps[0]).argv, (std::vector<std::string>{"/bin/sh", "-c", "echo $HOME\n"}));
  const auto& py = Op<RunStep>(steps[1]);
  EXPECT_EQ(py.argv, std::vector<std::string>{"/dev/pipes/EOF"});
  ASSERT_EQ(py.files.size(), 1u);
  EXPECT_EQ(py.files[0].second, "#!/usr/bin/env python3\nprint(1)\n");
  EXPECT_EQ(Op<RunStep>(steps[2]).argv,
            (std::vector<std::string>{"/bin/sh", "-c", "python3 <<EOF\nprint(2)\nEOF"}));
}

TEST(CompileTest, CopyHeredocIsExpandedUnlessQuoted) {
  auto g = CompileText(
      "FROM scratch\nARG NAME=kiln\n"
      "COPY <<EOF /greeting\nhello \"$NAME\"\nEOF\n"
      "COPY <<'EOF' /raw\nhello $NAME\nEOF\n");
  ASSERT_TRUE(g) << g.error().message();
  const auto& steps = g->stages[0].steps;
  const auto& a = Op<CopyStep>(steps[1]);
  ASSERT_EQ(a.heredoc_sources.size(), 1u);
  EXPECT_TRUE(a.sources.empty());
  EXPECT_EQ(a.heredoc_sources[0].name, "EOF");
  EXPECT_EQ(a.heredoc_sources[0].content, "hello \"kiln\"\n");
  EXPECT_EQ(a.dest, "/greeting");
  EXPECT_EQ(Op<CopyStep>(steps[2]).heredoc_sources[0].content, "hello $NAME\n");
}

// ---------------------------------------------------------------- config

TEST(CompileTest, ConfigInstructions) {
  auto g = CompileText(
      "FROM scratch\n"
      "LABEL a=1 \"b c\"=\"d e\"\nLABEL a=2\n"
      "EXPOSE 80 53/UDP 8000-8002\n"
      "VOLUME /data [\"/x\"]\n"
      "USER app:app\n"
      "WORKDIR a\nWORKDIR b\n"
      "STOPSIGNAL SIGKILL\n"
      "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s --retries=3 CMD curl -f x\n"
      "SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\n"
      "CMD echo hi\n"
      "ENTRYPOINT [\"/entry\"]\n"
      "MAINTAINER someone\n");
  ASSERT_TRUE(g) << g.error().message();
  const StageConfig& c = g->stages[0].config;
  EXPECT_EQ(c.labels, (std::vector<std::pair<std::string, std::string>>{{"a", "2"}, {"b c", "d e"}}));
  EXPECT_EQ(c.exposed_ports,
            (std::vector<std::string>{"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"}));
  EXPECT_EQ(c.user, "app:app");
  EXPECT_EQ(c.working_dir, "/a/b");
  EXPECT_EQ(c.stop_signal, std::optional<std::string>("SIGKILL"));
  ASSERT_TRUE(c.healthcheck);
  EXPECT_EQ(c.healthcheck->test, (std::vector<std::string>{"CMD-SHELL", "curl -f x"}));
  EXPECT_EQ(c.healthcheck->interval_ns, 30000000000);
  EXPECT_EQ(c.healthcheck->timeout_ns, 90000000000);
  EXPECT_EQ(c.healthcheck->start_period_ns, 1500000000);
  EXPECT_EQ(c.healthcheck->retries, 3);
  EXPECT_EQ(c.cmd, (std::vector<std::string>{"/bin/bash", "-eo", "pipefail", "-c", "echo hi"}));
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/entry"});
  EXPECT_EQ(c.author, std::optional<std::string>("someone"));
  const auto& steps = g->stages[0].steps;
  EXPECT_EQ(steps.back().created_by, "MAINTAINER someone");
  EXPECT_EQ(steps[steps.size() - 3].created_by,
            "CMD [\"/bin/bash\" \"-eo\" \"pipefail\" \"-c\" \"echo hi\"]");
}

TEST(CompileTest, EntrypointClearsInheritedCmd) {
  auto g = CompileText("FROM scratch AS a\nCMD [\"x\"]\nFROM a\nENTRYPOINT [\"e\"]\n");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->stages[1].config.cmd, std::vector<std::string>{});
  g = CompileText("FROM scratch\nCMD [\"x\"]\nENTRYPOINT [\"e\"]\n");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->stages[0].config.cmd, std::vector<std::string>{"x"});
}

TEST(CompileTest, HealthcheckNone) {
  auto g = CompileText("FROM scratch\nHEALTHCHECK NONE\n");
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->stages[0].config.healthcheck->test, std::vector<std::string>{"NONE"});
}

TEST(CompileTest, ConfigErrors) {
  EXPECT_EQ(ErrorOf("FROM scratch\nHEALTHCHECK --interval=10us CMD x\n"),
            "Containerfile:2: HEALTHCHECK --interval=10us: cannot be less than 1ms");
  EXPECT_EQ(ErrorOf("FROM scratch\nHEALTHCHECK --timeout=ten CMD x\n"),
            "Containerfile:2: HEALTHCHECK --timeout=ten: invalid duration \"ten\"");
  EXPECT_EQ(ErrorOf("FROM scratch\nHEALTHCHECK --retries=-1 CMD x\n"),
            "Containerfile:2: HEALTHCHECK --retries=-1: must be a non-negative integer");
  EXPECT_EQ(ErrorOf("FROM scratch\nSTOPSIGNAL SIGFOO\n"), "Containerfile:2: invalid signal: SIGFOO");
  EXPECT_EQ(ErrorOf("FROM scratch\nEXPOSE 80/xtp\n"), "Containerfile:2: EXPOSE 80/xtp: invalid protocol \"xtp\"");
  EXPECT_EQ(ErrorOf("FROM scratch\nEXPOSE 99999\n"), "Containerfile:2: EXPOSE 99999: invalid port");
  EXPECT_EQ(ErrorOf("FROM scratch\nEXPOSE localhost:80:80\n"),
            "Containerfile:2: EXPOSE localhost:80:80: invalid IP address \"localhost\"");
  EXPECT_EQ(ErrorOf("FROM scratch\nEXPOSE 0.0.0.0:80:80 [::1]:81:81/udp 82:82\n"), "<no error>");
  EXPECT_EQ(ErrorOf("FROM scratch\nSHELL /bin/bash -c\n"),
            "Containerfile:2: SHELL requires the arguments to be in JSON form");
  EXPECT_EQ(ErrorOf("FROM scratch\nARG E\nVOLUME $E\n"),
            "Containerfile:3: VOLUME specified can not be an empty string");
  EXPECT_EQ(ErrorOf("FROM scratch\nENV A=${B:?B is required}\n").find("Containerfile:2: "), 0u);
}

TEST(CompileTest, ExpandedVsNotExpandedInstructions) {
  auto g = CompileText(
      "FROM scratch\nENV D=/data P=8080 S=TERM U=me\n"
      "WORKDIR $D\nEXPOSE $P\nSTOPSIGNAL $S\nUSER $U\nVOLUME $D\nLABEL l=$D\n"
      "CMD echo $D\nENTRYPOINT [\"$D\"]\nRUN echo $D\nONBUILD RUN echo $D\n");
  ASSERT_TRUE(g) << g.error().message();
  const StageConfig& c = g->stages[0].config;
  EXPECT_EQ(c.working_dir, "/data");
  EXPECT_EQ(c.exposed_ports, std::vector<std::string>{"8080/tcp"});
  EXPECT_EQ(c.stop_signal, std::optional<std::string>("TERM"));
  EXPECT_EQ(c.user, "me");
  EXPECT_EQ(c.volumes, std::vector<std::string>{"/data"});
  EXPECT_EQ(c.labels[0].second, "/data");
  EXPECT_EQ(c.cmd, (std::vector<std::string>{"/bin/sh", "-c", "echo $D"}));
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"$D"});
  EXPECT_EQ(c.onbuild, std::vector<std::string>{"RUN echo $D"});
}

// ---------------------------------------------------------------- JSON

TEST(CompileTest, JsonSeparatesCacheFieldsFromLocations) {
  auto g = CompileText("FROM scratch\nRUN make\n");
  ASSERT_TRUE(g);
  json key = StepCacheJson(g->stages[0].steps[0]);
  EXPECT_EQ(key.dump().find("line"), std::string::npos);
  EXPECT_EQ(key["kind"], "run");
  json all = GraphToJson(*g);
  EXPECT_EQ(all["stages"][0]["steps"][0]["meta"]["location"]["line"], 2);
  std::string dump = DumpGraph(*g);
  EXPECT_EQ(dump.back(), '\n');
  // Same input, same bytes.
  auto g2 = CompileText("FROM scratch\nRUN make\n");
  EXPECT_EQ(DumpGraph(*g2), dump);
  // Keys are sorted.
  EXPECT_LT(dump.find("\"build_platform\""), dump.find("\"stages\""));
}

// ---------------------------------------------------------------- helpers

TEST(InstructionsTest, GoDuration) {
  EXPECT_EQ(*ParseGoDuration("1h2m3s"), 3723000000000);
  EXPECT_EQ(*ParseGoDuration("300ms"), 300000000);
  EXPECT_EQ(*ParseGoDuration("0"), 0);
  EXPECT_FALSE(ParseGoDuration("5"));
  EXPECT_FALSE(ParseGoDuration("1d"));
}

TEST(InstructionsTest, MountFieldsCsv) {
  auto f = SplitMountFields("type=bind,\"source=a,b\",ro");
  ASSERT_TRUE(f);
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ((*f)[1].value, "a,b");
  EXPECT_FALSE((*f)[2].has_value);
}

// ---------------------------------------------------------------- goldens

/// testdata/containerfiles/compile-* /{Containerfile, graph.json, options.json?}
/// and testdata/containerfiles-invalid/compile-* /{Containerfile, error.txt}.
/// KILN_UPDATE_GOLDEN=1 rewrites the expected files.
CompileOptions GoldenOptions(const std::string& dir, FakeResolver* r) {
  CompileOptions o = Defaults();
  r->images["docker.io/library/alpine:3.20"] = {{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                                                "", "", {}, std::nullopt,
                                                "sha256:0000000000000000000000000000000000000000000000000000000000000001",
                                                ""};
  r->images["docker.io/library/golang:1.22"] = {{"PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin", "GOPATH=/go"},
                                                "/go", "", {}, std::nullopt, "", ""};
  o.resolve_base = r->Fn();
  auto text = ReadFile(dir + "/options.json");
  if (text) {
    json j = json::parse(*text);
    if (j.contains("build_args"))
      o.build_args = j["build_args"].get<std::map<std::string, std::string>>();
    if (j.contains("target"))
      o.target = j["target"];
    if (j.contains("build_contexts"))
      o.build_contexts = j["build_contexts"].get<std::map<std::string, std::string>>();
    if (j.contains("platform"))
      o.target_platform = *Platform::Parse(j["platform"].get<std::string>());
  }
  return o;
}

std::vector<std::string> CaseDirs(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root, ec))
    if (e.is_directory() && e.path().filename().string().rfind("compile-", 0) == 0)
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Compiles testdata/ROOT/compile-*/Containerfile and hands each case's
/// directory and result to `check`.
template <typename Check>
void CompileCases(const std::string& root, const char* kind, Check check) {
  auto dirs = CaseDirs(test::TestdataDir() + "/" + root);
  ASSERT_FALSE(dirs.empty()) << root;
  for (const std::string& dir : dirs) {
    SCOPED_TRACE(dir);
    auto text = ReadFile(dir + "/Containerfile");
    ASSERT_TRUE(text);
    FakeResolver r;
    check(dir, CompileText(*text, GoldenOptions(dir, &r)));
  }
  std::printf("[ compile ] %zu %s golden cases\n", dirs.size(), kind);
}

TEST(CompileGoldenTest, ValidCases) {
  CompileCases("containerfiles", "valid", [](const std::string& dir, const auto& g) {
    ASSERT_TRUE(g) << g.error().message();
    test::ExpectGolden(dir + "/graph.json", DumpGraph(*g));
  });
}

TEST(CompileGoldenTest, InvalidCases) {
  CompileCases("containerfiles-invalid", "invalid", [](const std::string& dir, const auto& g) {
    ASSERT_FALSE(g) << "compiled without error";
    test::ExpectGolden(dir + "/error.txt", g.error().message() + "\n");
  });
}

// docs/security.md H36: `ARG A2=${A1}${A1}` chained doubles per line; the
// compile stops at 1 MiB per word with the line, and a file of many
// megabyte-sized steps stops at the total budget.
TEST(CompileLimitTest, ArgDoublingChainStopsAtTheLineWithOneMiB) {
  std::string text = "FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n";
  for (int i = 1; i <= 40; ++i)
    text += "ARG A" + std::to_string(i) + "=${A" + std::to_string(i - 1) + "}${A" + std::to_string(i - 1) + "}\n";
  text += "RUN true\n";
  // 16 bytes * 2^16 = 1 MiB (A16 fits), A17 is 2 MiB: line 2 + 17.
  std::string err = ErrorOf(text);
  EXPECT_NE(err.find("Containerfile:19: "), std::string::npos) << err;
  EXPECT_NE(err.find("larger than 1 MiB"), std::string::npos) << err;
}

TEST(CompileLimitTest, ManyStepsCarryingABigEnvironmentHitTheTotalBudget) {
  std::string text = "FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n";
  for (int i = 1; i <= 16; ++i)
    text += "ARG A" + std::to_string(i) + "=${A" + std::to_string(i - 1) + "}${A" + std::to_string(i - 1) + "}\n";
  // Every RUN copies the 2 MiB of args in scope: 64 MiB is reached within 32 RUNs.
  for (int i = 0; i < 40; ++i)
    text += "RUN true\n";
  std::string err = ErrorOf(text);
  EXPECT_NE(err.find("larger than 64 MiB"), std::string::npos) << err;
  EXPECT_NE(err.find("Containerfile:"), std::string::npos) << err;
  // A few such steps are fine.
  std::string few = text.substr(0, text.find("RUN true")) + "RUN true\nRUN true\n";
  auto g = CompileText(few);
  EXPECT_TRUE(g.has_value()) << g.error().message();
}

}  // namespace
}  // namespace kiln::frontend
