// Minimal leveled logging to stderr. Only the CLI sets the level.
#pragma once

#include <functional>
#include <string_view>

namespace kiln {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
/// Parses "error|warn|info|debug"; false if unknown.
bool ParseLogLevel(std::string_view text, LogLevel* out);

/// "kiln: warning: <msg>" and friends; thread-safe, one write per line.
void LogError(std::string_view msg);
void LogWarn(std::string_view msg);
void LogInfo(std::string_view msg);
void LogDebug(std::string_view msg);

/// While set, log lines (the whole "kiln: warning: ..." line, without the
/// newline) go to `sink` instead of stderr: the live build view prints them
/// above itself. An empty function restores stderr.
void SetLogSink(std::function<void(std::string_view)> sink);

}  // namespace kiln
