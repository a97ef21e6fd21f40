// kiln events [--filter K=V] [--since T] [--until T] [--format json|TEMPLATE]
// [--stream=false]: the store's event log (include/kiln/events.h,
// docs/run.md "Events") in podman 4.3's shapes. Streams new events until
// interrupted (or --until passes) unless --stream=false.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "kiln/events.h"
#include "kiln/format.h"

namespace kiln::cli {

// cmd_logs.cpp: a Go duration before now, Unix seconds or an RFC 3339 time.
Expected<int64_t> ParseLogTime(const std::string& flag, const std::string& v);

namespace {

struct Filters {
  std::multimap<std::string, std::string> by_key;
  /// podman: the same key twice is OR, different keys AND.
  bool Match(const events::Event& e) const {
    for (auto it = by_key.begin(); it != by_key.end();) {
      auto range = by_key.equal_range(it->first);
      bool any = false;
      for (auto r = range.first; r != range.second; ++r) {
        const std::string& k = r->first;
        const std::string& v = r->second;
        if (k == "type")
          any = any || e.type == v;
        else if (k == "event" || k == "status")
          any = any || e.status == v || (v == "die" && e.status == "died");
        else if (k == "container")
          any = any || (e.type == "container" && (e.name == v || (v.size() >= 3 && e.id.rfind(v, 0) == 0)));
        else if (k == "image")
          any = any || e.image == v || (e.type == "image" && (e.name == v || e.id.rfind(v, 0) == 0));
        else if (k == "label") {
          size_t eq = v.find('=');
          auto a = e.attributes.find(v.substr(0, eq));
          any = any || (a != e.attributes.end() && (eq == std::string::npos || a->second == v.substr(eq + 1)));
        } else if (k == "network")
          any = any || (e.type == k && (e.network == v || (v.size() >= 3 && e.id.rfind(v, 0) == 0)));
        else if (k == "secret" || k == "volume")
          any = any || (e.type == k && (e.name == v || (!e.id.empty() && e.id.rfind(v, 0) == 0)));
      }
      if (!any)
        return false;
      it = range.second;
    }
    return true;
  }
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void AddEventsCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("events", "show the store's events (containers, images, volumes, networks, secrets)");
  auto filters = std::make_shared<std::vector<std::string>>();
  auto since = std::make_shared<std::string>();
  auto until = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>();
  auto stream = std::make_shared<bool>(true);
  cmd->add_option("-f,--filter", *filters,
                  "KEY=VALUE: type=, event=, container=, image=, label=, volume=, network=, secret= (same key: any; "
                  "different: all)")
      ->allow_extra_args(false);
  cmd->add_option("--since", *since, "events since TIME (10m, 1h30m, Unix seconds, RFC 3339)");
  cmd->add_option("--until", *until, "events until TIME (as --since); streaming stops then");
  cmd->add_option("--format", *format, "json (one object a line), or a Go template ({{.Status}} {{.Name}})");
  cmd->add_option("--stream", *stream, "false: print the events so far and exit (default true: keep streaming)")
      ->default_str("true");
  SetAction(cmd, ctx, [&ctx, filters, since, until, format, stream] {
    Filters f;
    for (const auto& spec : *filters) {
      size_t eq = spec.find('=');
      if (eq == std::string::npos || eq == 0)
        return ReportError(Error(Errc::kInvalidInput, "events: invalid --filter " + spec + ": want KEY=VALUE"));
      std::string k = spec.substr(0, eq);
      static const char* const kKeys[] = {"type", "event", "status", "container", "image", "label",
                                          "secret", "volume", "network"};
      if (std::find(std::begin(kKeys), std::end(kKeys), k) == std::end(kKeys))
        return ReportError(Error(Errc::kInvalidInput, "events: invalid --filter " + spec +
                                                          ": kiln knows type, event, container, image, label, "
                                                          "secret, volume, network"));
      static const char* const kTypes[] = {"container", "image", "volume", "network", "secret", "pod", "system"};
      if (k == "type" && std::find(std::begin(kTypes), std::end(kTypes), spec.substr(eq + 1)) == std::end(kTypes))
        return ReportError(Error(Errc::kInvalidInput, "events: invalid --filter " + spec +
                                                          ": unknown event type (container, image, volume, "
                                                          "network, secret, pod, system)"));
      f.by_key.emplace(k, spec.substr(eq + 1));
    }
    int64_t since_ns = 0, until_ns = 0;
    if (!since->empty()) {
      auto t = ParseLogTime("--since", *since);
      if (!t)
        return ReportError(t.error());
      since_ns = *t;
    }
    if (!until->empty()) {
      auto t = ParseLogTime("--until", *until);
      if (!t)
        return ReportError(t.error());
      until_ns = *t;
    }
    std::optional<format::Template> tmpl;
    bool json_out = *format == "json" || *format == "{{json .}}";
    if (!format->empty() && !json_out) {
      format::Options o;
      o.name = "events";
      o.type_name = "events.Event";
      auto t = format::Template::Parse(*format, o);
      if (!t)
        return ReportError(t.error());
      tmpl = std::move(*t);
    }
    int rc = 0;
    auto print = [&](const events::Event& e) -> bool {
      if ((since_ns && e.time_ns < since_ns) || (until_ns && e.time_ns > until_ns) || !f.Match(e))
        return true;
      std::string line;
      if (json_out) {
        line = events::ToJson(e);
      } else if (tmpl) {
        auto obj = nlohmann::json::parse(events::ToJson(e));
        obj["Time"] = e.time_ns / 1000000000;  // podman's template Time: a time value
        obj["TimeNano"] = e.time_ns;
        auto out = tmpl->Execute(obj);
        if (!out) {
          rc = ReportError(out.error());
          return false;
        }
        line = *out;
      } else {
        line = events::ToText(e);
      }
      line += "\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
      return true;
    };
    for (const auto& e : events::ReadAll(ctx.StoreRoot()))
      if (!print(e))
        return rc;
    // podman: --until in the past, or --stream=false, ends after the log.
    if (!*stream || (until_ns && until_ns <= NowNs()))
      return rc;
    events::Follow(ctx.StoreRoot(), print, [&] { return !until_ns || NowNs() < until_ns; });
    return rc;
  });
}

}  // namespace kiln::cli
