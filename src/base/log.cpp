#include "kiln/log.h"

#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace kiln {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kWarn)};
std::mutex g_sink_mu;
std::shared_ptr<const std::function<void(std::string_view)>> g_sink;  // guarded by g_sink_mu
std::atomic<bool> g_has_sink{false};

void Emit(LogLevel level, const char* prefix, std::string_view msg) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed))
    return;
  std::string line = "kiln: ";
  line += prefix;
  line += msg;
  if (g_has_sink.load(std::memory_order_relaxed)) {
    std::shared_ptr<const std::function<void(std::string_view)>> sink;
    {
      std::lock_guard<std::mutex> lock(g_sink_mu);
      sink = g_sink;
    }
    if (sink) {
      (*sink)(line);
      return;
    }
  }
  line += '\n';
  // One write(2) per line so that lines from threads never interleave.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0)
      return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

bool ParseLogLevel(std::string_view text, LogLevel* out) {
  if (text == "error") *out = LogLevel::kError;
  else if (text == "warn" || text == "warning") *out = LogLevel::kWarn;
  else if (text == "info") *out = LogLevel::kInfo;
  else if (text == "debug") *out = LogLevel::kDebug;
  else return false;
  return true;
}

void SetLogSink(std::function<void(std::string_view)> sink) {
  std::lock_guard<std::mutex> lock(g_sink_mu);
  g_sink = sink ? std::make_shared<const std::function<void(std::string_view)>>(std::move(sink)) : nullptr;
  g_has_sink = g_sink != nullptr;
}

void LogError(std::string_view msg) { Emit(LogLevel::kError, "error: ", msg); }
void LogWarn(std::string_view msg) { Emit(LogLevel::kWarn, "warning: ", msg); }
void LogInfo(std::string_view msg) { Emit(LogLevel::kInfo, "", msg); }
void LogDebug(std::string_view msg) { Emit(LogLevel::kDebug, "debug: ", msg); }

}  // namespace kiln
