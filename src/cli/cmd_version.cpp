#include <sys/utsname.h>

#include <cstdio>

#include "cli/cli.h"
#include "cli/format_util.h"

namespace kiln::cli {

void AddVersionCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("version", "print kiln's version");
  auto format = std::make_shared<std::string>();
  cmd->add_option("-f,--format", *format,
                  "json, or a Go template over podman's fields ({{.Client.Version}}, {{.Client.OsArch}})");
  SetAction(cmd, ctx, [format] {
    if (format->empty()) {
      std::printf("kiln version %s\n", KILN_VERSION);
      return 0;
    }
    struct utsname u;
    ::uname(&u);
    std::string arch = u.machine;
    if (arch == "x86_64")
      arch = "amd64";
    else if (arch == "aarch64")
      arch = "arm64";
    nlohmann::json v = {{"Client",
                         {{"Version", KILN_VERSION},
                          {"APIVersion", KILN_VERSION},
                          {"OsArch", "linux/" + arch},
                          {"Os", "linux"}}}};
    if (format::IsJsonFormat(*format)) {
      std::printf("%s\n", v.dump(2).c_str());
      return 0;
    }
    format::Options o;
    o.name = "version";
    o.type_name = "define.Version";
    std::vector<nlohmann::json> one{v};
    return PrintObjects(*format, one, o);
  });
}

}  // namespace kiln::cli
