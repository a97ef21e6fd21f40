// kiln info [--format json]: store, id mappings, snapshotter, network helper,
// kernel and cgroup version. Runs inside kiln's user namespace, so the
// mappings and the snapshotter probe are the ones builds get.
#include <sys/statfs.h>
#include <sys/utsname.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/format_util.h"
#include "engine/emulation.h"
#include "kiln/fs.h"
#include "kiln/isolation.h"
#include "kiln/sandbox.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace kiln::cli {
namespace {

nlohmann::json MappingsJson(bool gid) {
  nlohmann::json out = nlohmann::json::array();
  auto maps = ReadIdMappings(gid);
  if (!maps)
    return out;
  for (const auto& m : *maps)
    out.push_back({{"container_id", m.container_id}, {"host_id", m.host_id}, {"size", m.size}});
  return out;
}

std::string CgroupVersion() {
  struct statfs fs;
  if (::statfs("/sys/fs/cgroup", &fs) != 0)
    return "none";
  if (static_cast<unsigned long>(fs.f_type) == CGROUP2_SUPER_MAGIC)
    return "v2";
  struct statfs unified;
  if (::statfs("/sys/fs/cgroup/unified", &unified) == 0 &&
      static_cast<unsigned long>(unified.f_type) == CGROUP2_SUPER_MAGIC)
    return "hybrid";
  return "v1";
}

/// The platforms RUN steps can execute on here (natively or emulated).
nlohmann::json PlatformsJson() {
  nlohmann::json out = nlohmann::json::array();
  for (const engine::RunnablePlatform& r : engine::RunnablePlatforms()) {
    nlohmann::json j = {{"platform", r.platform.str()}, {"native", !r.handler}};
    if (r.handler)
      j["emulator"] = {{"binfmt_misc", r.handler->name}, {"interpreter", r.handler->interpreter},
                       {"flags", r.handler->flags}};
    out.push_back(j);
  }
  return out;
}

/// Which isolation `kiln build` can use here and why (docs/ci.md): the user
/// namespace main() entered, or the reason it could not; chroot's needs.
nlohmann::json IsolationJson() {
  UserNamespaceSupport userns;
  std::string chroot_why;
  if (InKilnUserNamespace()) {
    userns.available = true;
    // Inside kiln's namespace this process holds every capability: what
    // counts for chroot is who kiln runs as on the host.
    if (HostUid() != 0)
      chroot_why = "not root (uid " + std::to_string(HostUid()) +
                   "): without a user namespace only root can give image files their owners and mount the rootfs";
  } else {
    std::string why;
    if (ChrootIsolation(&why)) {
      userns.reason = why;
    } else {
      userns = ProbeUserNamespaces();
    }
    chroot_why = ChrootUnavailableReason();
  }
  nlohmann::json allowed = nlohmann::json::array();
  if (userns.available)
    allowed = {"oci", "rootless"};
  if (chroot_why.empty())
    allowed.push_back("chroot");
  return {{"default", userns.available ? "rootless" : "chroot"},
          {"allowed", allowed},
          {"user_namespaces", {{"available", userns.available}, {"reason", userns.reason}}},
          {"chroot", {{"available", chroot_why.empty()}, {"reason", chroot_why}}}};
}

nlohmann::json Collect(const Context& ctx) {
  struct utsname u;
  ::uname(&u);
  std::string store = ctx.StoreRoot();
  // Probe where snapshots will live when the store exists (overlay support
  // depends on the filesystem), else in $TMPDIR.
  std::string scratch = PathExists(store) ? store + "/tmp" : std::string();
  RootfsDriver driver = ProbeRootfsDriver(scratch);
  auto helper = SandboxHelperPath();
  std::string net = NetworkHelper();
  return {
      {"store", {{"root", store}, {"run_root", ctx.RunRoot()}}},
      {"host",
       {{"kernel", std::string(u.release)},
        {"arch", std::string(u.machine)},
        {"cgroup_version", CgroupVersion()},
        {"rootless", HostUid() != 0},
        {"host_uid", HostUid()},
        {"in_user_namespace", InKilnUserNamespace()},
        {"uid_map", MappingsJson(false)},
        {"gid_map", MappingsJson(true)}}},
      {"platforms", PlatformsJson()},
      {"isolation", IsolationJson()},
      {"sandbox",
       {{"snapshotter", RootfsDriverName(driver)},
        {"network_helper", net.empty() ? "none" : net},
        {"helper", helper ? *helper : std::string()}}},
  };
}

void PrintMappings(const char* name, const nlohmann::json& maps) {
  std::printf("  %s:\n", name);
  for (const auto& m : maps)
    std::printf("    - container_id: %u\n      host_id: %u\n      size: %u\n", m["container_id"].get<unsigned>(),
                m["host_id"].get<unsigned>(), m["size"].get<unsigned>());
}

}  // namespace

void AddInfoCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("info", "show the store, id mappings, snapshotter, network helper, the isolation builds can use and the platforms this machine can run");
  auto format = std::make_shared<std::string>();
  // podman 4.3 keeps -D/--debug as a hidden, ignored flag; scripts still pass it
  // (listed here, so that docs/cli-compat.md's check finds it).
  auto debug = std::make_shared<bool>(false);
  cmd->add_flag("-D,--debug", *debug, "accepted for podman compatibility (kiln info always shows everything)");
  cmd->add_option("-f,--format", *format,
                  "json, or a Go template: podman's {{.Host.Arch}}, {{.Store.GraphRoot}}, {{.Store.GraphDriverName}}, "
                  "{{.Version.Version}}, or kiln's own keys ({{.sandbox.snapshotter}}) (docs/format.md)");
  SetAction(cmd, ctx, [&ctx, format, debug] {  // debug: the flag writes into it (it must live)
    nlohmann::json info = Collect(ctx);
    if (format::IsJsonFormat(*format)) {
      std::printf("%s\n", info.dump(2).c_str());
      return 0;
    }
    if (!format->empty()) {
      // podman's field names for what kiln has, beside kiln's own keys
      nlohmann::json t = info;
      const auto& host = info["host"];
      std::string cg = host["cgroup_version"].is_string() ? host["cgroup_version"].get<std::string>() : "";
      std::string arch = host["arch"].get<std::string>();
      arch = arch == "x86_64" ? "amd64" : arch == "aarch64" ? "arm64" : arch;  // Go's names, as podman
      t["Host"] = {{"Arch", arch},
                   {"Kernel", host["kernel"]},
                   {"Os", "linux"},
                   {"CgroupsVersion", cg},
                   {"Security", {{"Rootless", host["rootless"]}}},
                   {"IDMappings", {{"UIDMap", host["uid_map"]}, {"GIDMap", host["gid_map"]}}}};
      t["Store"] = {{"GraphRoot", info["store"]["root"]},
                    {"RunRoot", info["store"]["run_root"]},
                    {"GraphDriverName", info["sandbox"]["snapshotter"]}};
      t["Version"] = {{"Version", KILN_VERSION}, {"OsArch", "linux/" + arch}};
      format::Options o;
      o.name = "info";
      o.type_name = "define.Info";
      std::vector<nlohmann::json> one{t};
      return PrintObjects(*format, one, o);
    }
    const auto& h = info["host"];
    const auto& s = info["sandbox"];
    std::printf("host:\n  kernel: %s\n  arch: %s\n  cgroup_version: %s\n  rootless: %s\n  host_uid: %u\n",
                h["kernel"].get<std::string>().c_str(), h["arch"].get<std::string>().c_str(),
                h["cgroup_version"].get<std::string>().c_str(), h["rootless"].get<bool>() ? "true" : "false",
                h["host_uid"].get<unsigned>());
    PrintMappings("uid_map", h["uid_map"]);
    PrintMappings("gid_map", h["gid_map"]);
    std::printf("sandbox:\n  snapshotter: %s\n  network_helper: %s\n  helper: %s\n",
                s["snapshotter"].get<std::string>().c_str(), s["network_helper"].get<std::string>().c_str(),
                s["helper"].get<std::string>().c_str());
    const auto& iso = info["isolation"];
    auto why = [](const nlohmann::json& j) {
      return j["available"].get<bool>() ? std::string("available")
                                        : "unavailable (" + j["reason"].get<std::string>() + ")";
    };
    std::printf("isolation:\n  default: %s\n  user namespaces: %s\n  chroot: %s\n",
                iso["default"].get<std::string>().c_str(), why(iso["user_namespaces"]).c_str(),
                why(iso["chroot"]).c_str());
    std::printf("platforms:\n");
    for (const auto& p : info["platforms"]) {
      if (p["native"].get<bool>())
        std::printf("  - %s (native)\n", p["platform"].get<std::string>().c_str());
      else
        std::printf("  - %s (emulated: %s)\n", p["platform"].get<std::string>().c_str(),
                    p["emulator"]["interpreter"].get<std::string>().c_str());
    }
    std::printf("store:\n  root: %s\n  run_root: %s\n", info["store"]["root"].get<std::string>().c_str(),
                info["store"]["run_root"].get<std::string>().c_str());
    return 0;
  });
}

}  // namespace kiln::cli
