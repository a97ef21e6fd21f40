// kiln secret create|ls|inspect|rm|exists: secrets kept in the store for
// `run --secret` and `build --secret id=NAME` (docs/secrets.md), with
// podman 4.3's output shapes. Values are never printed.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/format_util.h"
#include "cli/image_util.h"
#include "kiln/fs.h"
#include "kiln/keyvalue.h"
#include "kiln/run.h"
#include "kiln/secret.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

// podman's secret fields (`podman secret inspect`).
nlohmann::json SecretJson(const secret::SecretInfo& s) {
  return {{"ID", s.id},
          {"CreatedAt", s.created},
          {"UpdatedAt", s.updated},
          {"Spec",
           {{"Name", s.name}, {"Driver", {{"Name", s.driver}, {"Options", {{"path", s.path}}}}}, {"Labels", s.labels}}}};
}


}  // namespace

void AddSecretCommand(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("secret", "manage secrets for run --secret and build --secret (create, ls, inspect, rm, exists)");
  group->require_subcommand(1);
  {
    auto* cmd = group->add_subcommand("create", "store a secret from a file, stdin (-) or, with --env, an environment variable");
    struct Flags {
      std::string name, source;
      bool env = false, replace = false;
      std::vector<std::string> labels;
      std::string driver = "file";
    };
    auto f = std::make_shared<Flags>();
    cmd->add_flag("--env", f->env, "SOURCE names an environment variable that holds the value");
    cmd->add_option("-l,--label", f->labels, "KEY=VALUE: a label (repeatable)");
    cmd->add_flag("--replace", f->replace, "replace the value of an existing secret of that name");
    cmd->add_option("-d,--driver", f->driver, "file (the only driver)")->check(CLI::IsMember({"file"}));
    cmd->add_option("name", f->name, "the secret's name")->required();
    cmd->add_option("source", f->source, "a file, - for stdin, or with --env a variable name")->required();
    SetAction(cmd, ctx, [&ctx, f] {
      std::map<std::string, std::string> labels;
      if (auto st = ParseKeyValues(f->labels, "--label", &labels); !st)
        return ReportError(st.error());
      std::string value;
      if (f->env) {
        const char* v = std::getenv(f->source.c_str());
        if (!v)
          return ReportError(Error(Errc::kInvalidInput, "secret create --env: environment variable " + f->source +
                                                            " is not set"));
        value = v;
      } else {
        auto data = f->source == "-" ? ReadAll(STDIN_FILENO, secret::kMaxSecretBytes + 1)
                                     : ReadFile(f->source, secret::kMaxSecretBytes + 1);
        if (!data)
          return ReportError(Error(Errc::kInvalidInput, "secret create " + f->name + ": " + data.error().message()));
        value = std::move(*data);
      }
      auto s = secret::Create(ctx.StoreRoot(), f->name, value, {.labels = labels, .replace = f->replace});
      if (!s)
        return ReportError(s.error());
      std::printf("%s\n", s->id.c_str());
      return 0;
    });
  }
  {
    auto* cmd = group->add_subcommand("ls", "list secrets (never their values)");
    cmd->alias("list");
    auto f = std::make_shared<ListFlags>();
    f->Add(cmd, "print only the IDs", "name=NAME, id=ID (prefixes)",
           "json, a Go template ({{.ID}} {{.Spec.Name}}), or table TEMPLATE (docs/format.md)");
    SetAction(cmd, ctx, [&ctx, f] {
      auto filter = ListFilter::Parse(f->filters, {"name", "id"}, [](const std::string& key) {
        return "invalid filter \"" + key + "\" (secret ls takes name, id)";
      });
      if (!filter)
        return ReportFormatError(filter.error());
      auto list = secret::List(ctx.StoreRoot());
      if (!list)
        return ReportError(list.error());
      std::vector<nlohmann::json> rows, tmpl_rows;
      for (const auto& s : *list) {
        if (!filter->Match([&](const std::string& key, const std::string& val, size_t) {
              return key == "name" ? s.name.rfind(val, 0) == 0 : s.id.rfind(val, 0) == 0;
            }))
          continue;
        if (f->quiet) {
          std::printf("%s\n", s.id.c_str());
          continue;
        }
        rows.push_back(SecretJson(s));
        nlohmann::json t = rows.back();
        // podman's list row: .ID .Name .Driver .CreatedAt .UpdatedAt (times
        // as "3 minutes ago" in the table).
        t["Name"] = s.name;
        t["Driver"] = s.driver;
        t["CreatedAt"] = HumanAgo(s.created);
        t["UpdatedAt"] = HumanAgo(s.updated);
        tmpl_rows.push_back(std::move(t));
      }
      if (f->quiet)
        return 0;
      format::ListOptions o;
      o.default_format = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}";
      o.headers = {{"CreatedAt", "CREATED"}, {"UpdatedAt", "UPDATED"}};
      o.template_options = TemplateOptions("list", "entities.SecretInfoReport");
      return f->Print(o, rows, tmpl_rows, 4);
    });
  }
  AddInspectCommand(*group, ctx, "show secrets as JSON (never their values)", "secrets", "secret names or IDs",
                    "json, or a Go template such as {{.Spec.Name}} (docs/format.md)",
                    TemplateOptions("inspect", "entities.SecretInfoReport"), 4,
                    [&ctx](const std::string& n) -> Expected<nlohmann::json> {
                      KILN_ASSIGN_OR_RETURN(auto s, secret::Inspect(ctx.StoreRoot(), n));
                      return SecretJson(s);
                    });
  {
    auto* cmd = group->add_subcommand("rm", "remove secrets");
    auto names = std::make_shared<std::vector<std::string>>();
    auto all = std::make_shared<bool>(false);
    auto force = std::make_shared<bool>(false);
    cmd->add_flag("-a,--all", *all, "remove every secret");
    cmd->add_flag("-f,--force", *force,
                  "remove a secret even when containers use it (they then fail to start; not in podman 4.3)");
    cmd->add_option("secrets", *names, "secret names or IDs");
    SetAction(cmd, ctx, [&ctx, names, all, force] {
      if (*all == !names->empty())
        return ReportError(Error(Errc::kInvalidInput, "secret rm: give secret names or --all (not both)"));
      std::vector<std::string> targets = *names;
      if (*all) {
        auto list = secret::List(ctx.StoreRoot());
        if (!list)
          return ReportError(list.error());
        for (const auto& s : *list)
          targets.push_back(s.id);
      }
      int rc = 0;
      for (const auto& n : targets) {
        // A secret a container refers to stays (its value is read at each
        // start) unless -f (docs/secrets.md).
        if (auto info = secret::Inspect(ctx.StoreRoot(), n); info && !*force) {
          auto users = run::ContainersUsingSecret(RunPaths(ctx), info->id);
          if (!users.empty()) {
            std::string list;
            for (const auto& u : users)
              list += (list.empty() ? "" : ", ") + u;
            rc = ReportError(Error(Errc::kFailed, "secret " + info->name + " is in use by container" +
                                                      (users.size() > 1 ? "s " : " ") + list +
                                                      ": remove them first or use secret rm -f"));
            continue;
          }
        }
        auto id = secret::Remove(ctx.StoreRoot(), n);
        if (!id) {
          rc = ReportError(id.error());
          continue;
        }
        std::printf("%s\n", id->c_str());
      }
      return rc;
    }, kNotFoundFails);
  }
  {
    auto* cmd = group->add_subcommand("exists", "exit 0 when the secret exists, 1 when it does not");
    auto name = std::make_shared<std::string>();
    cmd->add_option("secret", *name, "secret name or ID")->required();
    SetAction(cmd, ctx, [&ctx, name] {
      auto s = secret::Inspect(ctx.StoreRoot(), *name);
      if (s)
        return 0;
      if (s.error().code() == Errc::kNotFound)
        return 1;
      return ReportError(s.error());
    });
  }
}

}  // namespace kiln::cli
