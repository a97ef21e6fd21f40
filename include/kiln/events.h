// kiln's event log (docs/events.md): an append-only JSON-lines file per
// store, <store>/events/events.log, written by the commands and monitors
// that change things (container create/start/died/stop/remove/restart/
// health_status; image, volume, network and secret events: Record()), read
// by `kiln events`. One O_APPEND write per event; the log turns over into
// events.log.1 past 1 MiB, so it stays under ~2 MiB. `ps` and `inspect`
// never read it: the state files are the truth, events only tell.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/error.h"

namespace kiln::events {

struct Event {
  std::string type;    ///< container, image, secret, volume, network, system
  std::string status;  ///< create, start, died, stop, remove, restart, health_status, pull, build, ...
  std::string id;
  std::string name;
  std::string image;
  std::string network;  ///< network events: the network's name (podman's "Network")
  int64_t time_ns = 0;  ///< Unix ns; Append() sets it when 0
  std::optional<int> exit_code;  ///< died
  std::string health_status;     ///< health_status: healthy, unhealthy, starting
  std::map<std::string, std::string> attributes;  ///< a container's labels
};

/// <store_root>/events/events.log
std::string LogPath(const std::string& store_root);

/// Appends `e` (best effort: an event never fails the command that made it;
/// a write that fails is dropped with a debug log line).
void Append(const std::string& store_root, Event e);

/// Append() of an event that is not a container's, for the one-line calls in
/// the modules that change things: Record(root, "image", "tag", id, name).
/// podman's shapes: image (pull, push, tag, untag, remove, build, save,
/// loadfromarchive, import: ID and the reference, path or tag as Name),
/// volume (create, remove, prune: Name), network (create, remove: ID and
/// Network, attribute driver; connect, disconnect: the container's ID and
/// Name, Network), secret (create, remove: ID and Name).
void Record(const std::string& store_root, const std::string& type, const std::string& status,
            const std::string& id, const std::string& name, const std::string& network = "");

/// podman 4.3's `events --format json` object for `e`, on one line.
std::string ToJson(const Event& e);
/// Parses a line ToJson() wrote. kCorrupt otherwise.
Expected<Event> FromJson(const std::string& line);
/// podman's plain line: "2026-12-05 01:13:23.870839616 +0000 UTC container
/// create ID (image=IMG, name=NAME, K=V)".
std::string ToText(const Event& e);

/// Every event in the log (events.log.1 then events.log), oldest first.
/// A missing log is no events.
std::vector<Event> ReadAll(const std::string& store_root);

/// Calls `on_event` for each event appended from now on (the log's end when
/// called), polling every `poll_ms`, until `on_event` returns false or
/// `keep_going` (called between polls) returns false.
void Follow(const std::string& store_root, const std::function<bool(const Event&)>& on_event,
            const std::function<bool()>& keep_going, int poll_ms = 100);

}  // namespace kiln::events
