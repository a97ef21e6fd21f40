// The command table around the commands: podman's command groups and aliases
// (`image ls`, `container run`, `system prune`, `buildx build`), usage lines
// that name the positionals, examples in --help, and the messages for an
// unknown command or flag (podman's wording; kiln's exit status 2 for usage
// errors, docs/cli.md). Each command still registers itself in its own
// cmd_<name>.cpp; the groups here register the same commands again under a
// group name, so `kiln image ls` and `kiln images` run the same code.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>

#include "cli/commands.h"

namespace kiln::cli {

namespace {

/// Usage (positionals) and examples for a command, by its path under `kiln`.
/// Group members that re-register a command use the command's own entry
/// (CanonicalPath below).
struct CommandHelp {
  const char* path;
  const char* args;      // after "[OPTIONS]"; nullptr: CLI11's positional names
  const char* examples;  // lines, each "kiln ..."; nullptr: none
};

const CommandHelp kHelp[] = {
    {"build", "[CONTEXT]",
     "kiln build -t myapp .\n"
     "kiln build -f Containerfile.dev --build-arg VERSION=1.2 -t myapp:dev .\n"
     "kiln build --platform linux/amd64,linux/arm64 -t registry.example/myapp .\n"
     "kiln build --target builder --no-cache ."},
    {"run", "IMAGE [COMMAND [ARG...]]",
     "kiln run --rm busybox echo hello\n"
     "kiln run -it --rm busybox sh\n"
     "kiln run -d --name web -p 8080:80 -v ./site:/www:ro myimage\n"
     "kiln run --rm -e GREETING=hi --network none busybox env\n"
     "kiln run -d -P --init --tmpfs /tmp:size=64m --cidfile web.cid myimage"},
    {"create", "IMAGE [COMMAND [ARG...]]",
     "kiln create --name web -p 8080:80 myimage\n"
     "kiln start web"},
    {"port", "CONTAINER [PRIVATE_PORT[/PROTO]]", "kiln port web\nkiln port web 80/tcp\nkiln port -a"},
    {"rename", "CONTAINER NEW_NAME", "kiln rename web web-old"},
    {"top", "CONTAINER [DESCRIPTOR...]", "kiln top web\nkiln top web pid,user,args"},
    {"attach", "CONTAINER", "kiln attach web\nkiln attach --sig-proxy=false web"},
    {"events", "", "kiln events --stream=false --format json\nkiln events --filter type=image --filter event=pull\n"
                   "kiln events --since 10m --filter container=web"},
    {"exec", "CONTAINER COMMAND [ARG...]",
     "kiln exec web ls /\n"
     "kiln exec -it web sh\n"
     "kiln exec -u 1000 -w /tmp -e K=V web env"},
    {"ps", "", "kiln ps\nkiln ps -a\nkiln ps -a -q\nkiln ps --format json"},
    {"images", "", "kiln images\nkiln images -q\nkiln image ls --format json"},
    {"logs", "CONTAINER",
     "kiln logs web\n"
     "kiln logs -f web\n"
     "kiln logs --tail 20 -t web\n"
     "kiln logs --since 10m --until 2m web"},
    {"inspect", "NAME [NAME...]",
     "kiln inspect busybox\n"
     "kiln inspect --type container web\n"
     "kiln inspect --format '{{.Config.Cmd}}' busybox"},
    {"pull", "REFERENCE",
     "kiln pull docker.io/library/alpine:3.19\n"
     "kiln pull --platform linux/arm64 alpine\n"
     "kiln pull oci-archive:./image.tar"},
    {"push", "IMAGE [DESTINATION]",
     "kiln push localhost:5000/myapp\n"
     "kiln push --sign-by-sigstore-private-key mykey.private --sign-passphrase-file pass.txt myapp localhost:5000/myapp\n"
     "kiln push myapp docker://localhost:5000/myapp:1.0\n"
     "kiln push myapp oci-archive:./myapp.tar"},
    {"tag", "SOURCE TARGET [TARGET...]", "kiln tag myapp myapp:1.0 localhost:5000/myapp:1.0"},
    {"rmi", "IMAGE [IMAGE...]", "kiln rmi myapp:1.0\nkiln rmi -f myapp"},
    {"history", "IMAGE", "kiln history busybox"},
    {"save", "IMAGE [IMAGE...]",
     "kiln save -o myapp.tar myapp\nkiln save --format docker-archive -o myapp.tar myapp"},
    {"load", "", "kiln load -i myapp.tar"},
    {"import", "FILE|URL|- [NAME]", "kiln import rootfs.tar.gz myrootfs\ncat rootfs.tar | kiln import - myrootfs"},
    {"login", "REGISTRY", "kiln login -u me localhost:5000\necho \"$TOKEN\" | kiln login -u me --password-stdin registry.example"},
    {"logout", "[REGISTRY]", "kiln logout localhost:5000\nkiln logout --all"},
    {"generate-sigstore-key", "", "kiln generate-sigstore-key --output-prefix mykey --passphrase-file pass.txt"},
    {"prune", "", "kiln prune\nkiln prune --all -f"},
    {"container prune", "", "kiln container prune\nkiln container prune -f"},
    {"volume prune", "", "kiln volume prune\nkiln volume prune -f"},
    {"parse", "FILE", "kiln parse Containerfile\nkiln parse --dump Containerfile"},
    {"unshare", "[COMMAND [ARG...]]", "kiln unshare\nkiln unshare ls -ln ~/.local/share/kiln"},
    {"start", "CONTAINER [CONTAINER...]", "kiln start web"},
    {"stop", "CONTAINER [CONTAINER...]", "kiln stop web\nkiln stop -t 2 web db"},
    {"kill", "CONTAINER [CONTAINER...]", "kiln kill web\nkiln kill -s HUP web"},
    {"wait", "CONTAINER [CONTAINER...]",
     "kiln wait web\nkiln wait --condition healthy db\nkiln wait --condition running --interval 100ms web"},
    {"rm", "CONTAINER [CONTAINER...]", "kiln rm web\nkiln rm -f web db"},
    {"container inspect", "CONTAINER [CONTAINER...]", "kiln container inspect web"},
    {"secret create", "NAME FILE|-", "kiln secret create dbpass ./pass.txt\nprintf %s \"$PW\" | kiln secret create dbpass -\nkiln secret create --env dbpass PW"},
    {"secret ls", "", "kiln secret ls\nkiln secret ls --format '{{.Name}}'"},
    {"secret inspect", "SECRET [SECRET...]", "kiln secret inspect dbpass"},
    {"secret rm", "SECRET [SECRET...]", "kiln secret rm dbpass\nkiln secret rm --all"},
    {"secret exists", "SECRET", "kiln secret exists dbpass && echo yes"},
    {"volume create", "[NAME]", "kiln volume create data"},
    {"volume inspect", "VOLUME [VOLUME...]", "kiln volume inspect data"},
    {"volume rm", "VOLUME [VOLUME...]", "kiln volume rm data"},
    {"network create", "NAME",
     "kiln network create safe-net\n"
     "kiln network create --subnet 10.90.0.0/24 --gateway 10.90.0.254 --label app=web web-net\n"
     "kiln network create --internal --disable-dns backend"},
    {"network ls", "", "kiln network ls\nkiln network ls -q\nkiln network ls --format '{{.Name}} {{.Driver}}'"},
    {"network inspect", "NETWORK [NETWORK...]", "kiln network inspect safe-net\nkiln network inspect -f '{{.subnets}}' safe-net"},
    {"network rm", "NETWORK [NETWORK...]", "kiln network rm safe-net\nkiln network rm -f safe-net"},
    {"network exists", "NETWORK", "kiln network exists safe-net"},
    {"network prune", "", "kiln network prune -f"},
    {"pod create", "[NAME]",
     "kiln pod create --name my-pod -p 8080:80\n"
     "kiln run -d --pod my-pod busybox httpd -f -p 80\n"
     "kiln pod create --network safe-net --hostname web --label app=web web-pod"},
    {"pod ps", "", "kiln pod ps\nkiln pod ls -q\nkiln pod list --format '{{.Name}} {{.Status}}'"},
    {"pod inspect", "POD [POD...]", "kiln pod inspect my-pod\nkiln pod inspect -f '{{.State}}' my-pod"},
    {"pod start", "POD [POD...]", "kiln pod start my-pod"},
    {"pod stop", "POD [POD...]", "kiln pod stop my-pod\nkiln pod stop -t 2 my-pod"},
    {"pod restart", "POD [POD...]", "kiln pod restart my-pod"},
    {"pod kill", "POD [POD...]", "kiln pod kill -s TERM my-pod"},
    {"pod rm", "POD [POD...]", "kiln pod rm my-pod\nkiln pod rm -f my-pod"},
    {"pod logs", "POD", "kiln pod logs my-pod\nkiln pod logs -f --names my-pod"},
    {"pod top", "POD", "kiln pod top my-pod"},
    {"pod exists", "POD", "kiln pod exists my-pod"},
    {"pod prune", "", "kiln pod prune -f"},
    {"kube generate", "POD | CONTAINER...",
     "kiln kube generate my-pod -f mon_pod.yml\nkiln kube generate --service my-pod\nkiln kube generate web db"},
    {"generate kube", "POD | CONTAINER...", "kiln generate kube my-pod -f mon_pod.yml"},
    {"generate systemd", "CONTAINER | POD",
     "kiln generate systemd --name web\nkiln generate systemd --name --files --restart-policy always web"},
    {"generate quadlet", "[FILE | DIR...]",
     "kiln generate quadlet\nkiln generate quadlet ~/.config/containers/systemd/web.container\n"
     "kiln generate quadlet -o ~/.config/systemd/user ~/.config/containers/systemd"},
    {"compose config", "[SERVICE...]",
     "kiln compose config\nkiln compose -f compose.yaml -f compose.prod.yaml config --format json\n"
     "kiln compose --profile debug config --services"},
    {"manifest create", "LIST [IMAGE...]", "kiln manifest create mylist myapp-amd64 myapp-arm64"},
    {"manifest add", "LIST IMAGE", "kiln manifest add mylist docker://localhost:5000/myapp:arm64"},
    {"manifest remove", "LIST DIGEST", nullptr},
    {"manifest inspect", "LIST", "kiln manifest inspect mylist"},
    {"manifest push", "LIST [DESTINATION]", "kiln manifest push mylist docker://localhost:5000/myapp"},
};

/// A command registered again under a podman group: group, name there,
/// aliases there, the command it runs (its path under `kiln`).
struct GroupMember {
  const char* group;
  const char* name;
  std::vector<const char*> aliases;
  const char* canonical;
};

const GroupMember kMembers[] = {
    {"image", "build", {}, "build"},       {"image", "history", {}, "history"},
    {"image", "import", {}, "import"},     {"image", "inspect", {}, "inspect"},
    {"image", "ls", {"list"}, "images"},   {"image", "load", {}, "load"},
    {"image", "prune", {}, "prune"},       {"image", "pull", {}, "pull"},
    {"image", "push", {}, "push"},         {"image", "rm", {}, "rmi"},
    {"image", "save", {}, "save"},         {"image", "tag", {}, "tag"},
    {"container", "ls", {"list", "ps"}, "ps"},
    {"container", "run", {}, "run"},       {"container", "logs", {}, "logs"},
    {"container", "create", {}, "create"}, {"container", "port", {}, "port"},
    {"container", "exec", {}, "exec"},
    {"container", "restart", {}, "restart"},
    {"container", "rename", {}, "rename"},  {"container", "top", {}, "top"},
    {"container", "attach", {}, "attach"},
    {"system", "info", {}, "info"},        {"system", "prune", {}, "prune"},
    {"buildx", "build", {}, "build"},
};

/// podman 4.3's commands (`podman [GROUP] --help`) that kiln does not have:
/// named as such instead of "unrecognized".
const std::map<std::string, std::vector<std::string>> kPodmanOnly = {
    {"", {"auto-update", "commit", "cp", "diff", "export",
          "init", "machine", "mount", "pause", "play",
          "search", "stats", "unmount", "unpause", "untag", "update"}},
    {"container", {"checkpoint", "cleanup", "clone", "commit", "cp", "diff", "exists", "export",
                   "init", "mount", "pause", "restore", "runlabel", "stats",
                   "unmount", "unpause", "update"}},
    {"image", {"diff", "exists", "mount", "scp", "search", "sign", "tree", "trust", "unmount", "untag"}},
    {"system", {"connection", "df", "migrate", "renumber", "reset", "service"}},
    {"volume", {"exists", "export", "import", "mount", "reload", "unmount"}},
    {"manifest", {"annotate", "exists", "rm"}},
    {"network", {"reload"}},
    {"pod", {"clone", "pause", "stats", "unpause"}},
    {"kube", {"apply", "down", "play"}},
};

/// The registration function of each command a group member re-registers.
using AddFn = void (*)(CLI::App&, Context&);
const std::map<std::string, AddFn>& AddFunctions() {
  static const std::map<std::string, AddFn> m = {
      {"build", AddBuildCommand}, {"history", AddHistoryCommand}, {"import", AddImportCommand},
      {"inspect", AddInspectCommand}, {"images", AddImagesCommand}, {"load", AddLoadCommand},
      {"prune", AddPruneCommand}, {"pull", AddPullCommand}, {"push", AddPushCommand},
      {"rmi", AddRmiCommand}, {"save", AddSaveCommand}, {"tag", AddTagCommand},
      {"ps", AddPsCommand}, {"run", AddRunCommand}, {"logs", AddLogsCommand},
      {"exec", AddExecCommand}, {"info", AddInfoCommand}, {"create", AddCreateCommand},
      {"port", AddPortCommand}, {"restart", AddRestartCommand},
      {"rename", AddRenameCommand}, {"top", AddTopCommand}, {"attach", AddAttachCommand},
  };
  return m;
}

/// Group member -> the command's own path (for its usage and examples).
std::map<const CLI::App*, std::string>& Canonical() {
  static std::map<const CLI::App*, std::string> m;
  return m;
}

/// "kiln image ls" for an App.
std::string PathOf(const CLI::App* app) {
  std::vector<std::string> parts;
  for (const CLI::App* a = app; a && a->get_parent(); a = a->get_parent())
    parts.push_back(a->get_name());
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it)
    out += (out.empty() ? "" : " ") + *it;
  return out;
}

std::string CanonicalPath(const CLI::App* app) {
  auto it = Canonical().find(app);
  return it != Canonical().end() ? it->second : PathOf(app);
}

const CommandHelp* HelpFor(const CLI::App* app) {
  std::string path = CanonicalPath(app);
  for (const auto& h : kHelp)
    if (path == h.path)
      return &h;
  return nullptr;
}

bool Visible(const CLI::App* sub) { return !sub->get_name().empty() && !sub->get_group().empty(); }

std::vector<CLI::App*> VisibleSubcommands(const CLI::App* app) {
  std::vector<CLI::App*> out;
  for (CLI::App* s : const_cast<CLI::App*>(app)->get_subcommands([](CLI::App* s) { return Visible(s); }))
    out.push_back(s);
  return out;
}

std::string Upper(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

/// cobra's suggestions: within two edits, or a name that starts with it.
std::vector<std::string> Suggestions(const CLI::App* group, const std::string& word) {
  std::vector<std::string> out;
  for (const CLI::App* s : VisibleSubcommands(group)) {
    std::vector<std::string> names{s->get_name()};
    for (const auto& a : s->get_aliases())
      names.push_back(a);
    for (const auto& n : names)
      if (Distance(word, n) <= 2 || (word.size() > 0 && n.rfind(word, 0) == 0)) {
        out.push_back(s->get_name());
        break;
      }
  }
  return out;
}

CLI::App* FindSubcommand(CLI::App* app, const std::string& word) {
  for (CLI::App* s : app->get_subcommands([](CLI::App*) { return true; }))
    if (!s->get_name().empty() && s->check_name(word))
      return s;
  return nullptr;
}

/// An option of `app` (or, for the flags that fall through, of its parents)
/// named by `arg` ("--name", "--name=value", "-n").
const CLI::Option* FindOption(const CLI::App* app, const std::string& arg) {
  std::string name = arg.substr(0, arg.find('='));
  for (const CLI::App* a = app; a; a = a->get_parent()) {
    if (const CLI::Option* o = a->get_option_no_throw(name))
      return o;
    if (!a->get_fallthrough())
      break;
  }
  return nullptr;
}

/// The first flag in args that `app` does not know, as podman words it
/// ("unknown flag: --bavard", "unknown shorthand flag: 'z' in -z"); empty
/// when every flag is known.
std::string UnknownFlag(const CLI::App* app, const std::vector<std::string>& args) {
  if (app->get_allow_extras() && !app->get_prefix_command())
    return {};  // takes any flag (the `kiln compose` commands that only say "not yet")
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--")
      break;
    if (a.size() < 2 || a[0] != '-') {
      if (app->get_prefix_command())
        break;  // the container's command starts here
      continue;
    }
    if (a[1] == '-') {
      const CLI::Option* o = FindOption(app, a);
      if (!o)
        return "unknown flag: " + a.substr(0, a.find('='));
      if (a.find('=') == std::string::npos && o->get_expected_min() > 0)
        ++i;  // its value
      continue;
    }
    for (size_t k = 1; k < a.size(); ++k) {
      const CLI::Option* o = FindOption(app, std::string("-") + a[k]);
      if (!o)
        return std::string("unknown shorthand flag: '") + a[k] + "' in " + a;
      if (o->get_expected_min() > 0) {
        if (k + 1 == a.size())
          ++i;  // -n VALUE
        break;  // -nVALUE
      }
    }
  }
  return {};
}

/// The --help text of a command, with its full path in the usage line.
std::string HelpText(const CLI::App* app) {
  if (!app->get_parent())
    return app->help();
  const CLI::App* parent = app->get_parent();
  return app->help(parent->get_parent() ? "kiln " + PathOf(parent) : "kiln");
}

int UsageError(const std::string& message, const std::string& see) {
  std::cerr << "kiln: error: " << message << "\n" << see << "\n";
  return 2;
}

}  // namespace

std::string KilnFormatter::make_usage(const CLI::App* app, std::string name) const {
  std::string line = "Usage: " + name;
  if (!VisibleSubcommands(app).empty() && app->get_parent() == nullptr)
    return line + " [GLOBAL OPTIONS] COMMAND [ARG...]\n";
  if (!VisibleSubcommands(app).empty())
    return line + " COMMAND\n";
  if (!app->get_options([](const CLI::Option* o) { return o->nonpositional(); }).empty())
    line += " [OPTIONS]";
  const CommandHelp* h = HelpFor(app);
  if (h && h->args) {
    if (*h->args)
      line += std::string(" ") + h->args;
    return line + "\n";
  }
  for (const CLI::Option* o : app->get_options([](const CLI::Option* o) { return o->get_positional(); })) {
    std::string n = Upper(o->get_name(true, false));
    if (o->get_expected_max() > 1)
      n += " [" + n + "...]";
    line += " " + (o->get_required() ? n : "[" + n + "]");
  }
  return line + "\n";
}

std::string KilnFormatter::make_footer(const CLI::App* app) const {
  std::string out;
  if (const CommandHelp* h = HelpFor(app); h && h->examples) {
    out += "Examples:\n";
    std::istringstream in(h->examples);
    for (std::string l; std::getline(in, l);)
      out += "  " + l + "\n";
  }
  if (!app->get_footer().empty())
    out += (out.empty() ? "" : "\n") + app->get_footer() + "\n";
  return out;
}

std::string CommandExamples(const CLI::App* app) {
  const CommandHelp* h = HelpFor(app);
  return h && h->examples ? h->examples : "";
}

std::string CommandUsage(const CLI::App* app) {
  KilnFormatter f;
  std::string u = f.make_usage(app, "kiln" + std::string(PathOf(app).empty() ? "" : " ") + PathOf(app));
  u = u.substr(std::strlen("Usage: "));
  if (!u.empty() && u.back() == '\n')
    u.pop_back();
  return u;
}

void AddCommandGroups(CLI::App& app, Context& ctx) {
  std::map<std::string, CLI::App*> groups;
  groups["container"] = app.get_subcommand("container");
  groups["image"] = app.add_subcommand("image", "manage images (ls, rm, pull, push, tag, inspect, history, build, ...)");
  groups["system"] = app.add_subcommand("system", "manage kiln (info, prune)");
  groups["buildx"] = app.add_subcommand("buildx", "docker buildx compatibility: `buildx build` is `build`");
  for (const auto& m : kMembers) {
    CLI::App* g = groups.at(m.group);
    g->require_subcommand(1);
    AddFunctions().at(m.canonical)(*g, ctx);
    CLI::App* sub = g->get_subcommand(m.canonical);
    sub->name(m.name);
    for (const char* a : m.aliases)
      sub->alias(a);
    Canonical()[sub] = m.canonical;
  }
  groups["container"]->description("manage containers (ls, run, create, logs, exec, port, start, stop, kill, wait, rm, inspect)");
  // The hidden helpers a re-registered command brings along (run's __monitor).
  for (auto& [name, g] : groups)
    for (CLI::App* s : g->get_subcommands([](CLI::App* s) { return s->get_name().rfind("__", 0) == 0; }))
      g->remove_subcommand(s);
}

std::string CanonicalCommand(int argc, char** argv) {
  std::vector<std::string> words;
  for (int i = 1; i < argc && words.size() < 2; ++i) {
    std::string a = argv[i];
    if (a == "--root" || a == "--log-level") {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') {
      if (words.empty())
        continue;
      break;
    }
    words.push_back(a);
  }
  if (words.empty())
    return {};
  if (words.size() == 2)
    for (const auto& m : kMembers) {
      if (words[0] != m.group)
        continue;
      if (words[1] == m.name)
        return m.canonical;
      for (const char* a : m.aliases)
        if (words[1] == a)
          return m.canonical;
    }
  return words[0];
}

bool AddInvokedCommandOnly(CLI::App& app, Context& ctx, int argc, char** argv) {
  // The first command word, past the global flags (as CanonicalCommand).
  std::string word;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" || a == "--log-level") {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-')
      continue;
    word = a;
    break;
  }
  // `__monitor` (run -d, start) is registered with `run`.
  const std::string& name = word == "__monitor" ? std::string("run") : word;
  auto it = AddFunctions().find(name);
  if (it == AddFunctions().end())
    return false;
  it->second(app, ctx);
  return true;
}

int CheckCommandLine(CLI::App& app, int argc, char** argv) {
  CLI::App* cur = &app;
  std::vector<std::string> rest;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--")
      return -1;
    if (!a.empty() && a[0] == '-' && a.size() > 1) {
      const CLI::Option* o = FindOption(cur, a);
      if (!o)
        return UsageError(UnknownFlag(cur, {a}), "See '" + ("kiln" + std::string(cur == &app ? "" : " ") + PathOf(cur)) +
                                                     " --help'");
      if (o == cur->get_help_ptr() || o == cur->get_help_all_ptr() || a == "--version" || a == "-v")
        return -1;  // CLI11 prints the help or version
      if (a.find('=') == std::string::npos && o->get_expected_min() > 0)
        ++i;
      continue;
    }
    if (cur == &app && a == "help") {
      // `kiln help [COMMAND...]`: as `kiln [COMMAND...] --help`.
      CLI::App* target = &app;
      for (int k = i + 1; k < argc; ++k) {
        CLI::App* s = FindSubcommand(target, argv[k]);
        if (!s)
          break;
        target = s;
      }
      std::cout << HelpText(target);
      return 0;
    }
    CLI::App* sub = FindSubcommand(cur, a);
    std::string where = "kiln" + std::string(cur == &app ? "" : " ") + PathOf(cur);
    if (!sub) {
      std::string try_line = "Try '" + where + " --help' for more information";
      auto only = kPodmanOnly.find(PathOf(cur));
      if (only != kPodmanOnly.end() &&
          std::find(only->second.begin(), only->second.end(), a) != only->second.end())
        return UsageError("`" + where + " " + a + "` is not implemented in kiln (a podman command; docs/cli-compat.md "
                          "lists what kiln has and when the rest comes)",
                          try_line);
      std::string msg = "unrecognized command `" + where + " " + a + "`";
      auto sugg = Suggestions(cur, a);
      if (!sugg.empty()) {
        msg += "\n\nDid you mean this?\n";
        for (const auto& s : sugg)
          msg += "\t" + s + "\n";
      }
      return UsageError(msg, try_line);
    }
    cur = sub;
    if (VisibleSubcommands(cur).empty()) {
      // A command: CLI11 parses the rest. Those that take the container's
      // command after their flags (run, exec, unshare) stop at the first
      // unknown flag without an error: name it here.
      if (cur->get_prefix_command()) {
        std::vector<std::string> args(argv + i + 1, argv + argc);
        if (std::string flag = UnknownFlag(cur, args); !flag.empty())
          return UsageError(flag, "See 'kiln " + PathOf(cur) + " --help'");
      }
      return -1;
    }
  }
  std::string where = "kiln" + std::string(cur == &app ? "" : " ") + PathOf(cur);
  std::cout << HelpText(cur);
  std::cerr << "kiln: error: missing command '" << where << " COMMAND'\n";
  return 2;
}

int ReportParseError(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  // The command being parsed: the deepest selected subcommand.
  CLI::App* cur = &app;
  for (;;) {
    auto subs = cur->get_subcommands();
    if (subs.empty())
      break;
    cur = subs.front();
  }
  std::string where = "kiln" + std::string(cur == &app ? "" : " ") + PathOf(cur);
  std::string see = "See '" + where + " --help'";
  // The arguments after the command words.
  std::vector<std::string> args;
  {
    size_t depth = 0;
    for (const CLI::App* a = cur; a != &app; a = a->get_parent())
      ++depth;
    size_t seen = 0;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (seen < depth) {
        if (a == "--root" || a == "--log-level") {
          ++i;
          continue;
        }
        if (!a.empty() && a[0] != '-')
          ++seen;
        continue;
      }
      args.push_back(a);
    }
  }
  // (get_name() is the command's name for some errors: dynamic_cast.)
  bool extras = dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr;
  bool mismatch = dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr;
  bool required = dynamic_cast<const CLI::RequiredError*>(&e) != nullptr;
  if (extras || mismatch) {
    if (std::string flag = UnknownFlag(cur, args); !flag.empty())
      return UsageError(flag, see);
  }
  std::string msg = e.what();
  if (extras) {
    bool has_positionals = !cur->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
    std::string extra = msg.substr(msg.find(':') + 1);
    extra.erase(0, extra.find_first_not_of(' '));
    if (!has_positionals)
      return UsageError("`" + where + "` takes no arguments", see);
    return UsageError("too many arguments: " + extra + " (usage: " + CommandUsage(cur) + ")", see);
  }
  if (required && msg.find(" is required") != std::string::npos && msg.rfind("--", 0) != 0 &&
      msg.rfind("-", 0) != 0) {
    return UsageError("missing argument: " + Upper(msg.substr(0, msg.find(" is required"))) +
                          " (usage: " + CommandUsage(cur) + ")",
                      see);
  }
  if (mismatch && msg.find("required") != std::string::npos && msg.find(": ") != std::string::npos)
    return UsageError("flag needs an argument: " + msg.substr(0, msg.find(':')), see);
  if (!msg.empty())
    msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
  return UsageError(msg, see);
}

}  // namespace kiln::cli
