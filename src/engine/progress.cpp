#include "engine/progress.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "kiln/fs.h"

namespace kiln::engine {

std::string Progress::Prefix(const StepLabel& s) const {
  return "[" + s.stage + " " + std::to_string(s.step) + "/" + std::to_string(s.total) + "] ";
}

void Progress::Emit(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  (void)WriteAll(fd_, line + "\n");
}

void Progress::Json(const StepLabel& s, const char* status, const std::string& key, double seconds,
                    const std::string& extra_name, const std::string& extra) {
  nlohmann::json j;
  j["stage"] = s.stage;
  j["step"] = s.step;
  j["total"] = s.total;
  j["instruction"] = s.text;
  j["status"] = status;
  if (!key.empty())
    j["cache_key"] = key;
  if (seconds >= 0)
    j["duration"] = seconds;
  if (!extra_name.empty())
    j[extra_name] = extra;
  Emit(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void Progress::Start(const StepLabel& s) {
  if (mode_ == ProgressMode::kPlain)
    Emit(Prefix(s) + s.text);
  else if (mode_ == ProgressMode::kJson)
    Json(s, "start", "", -1, "", "");
}

std::vector<std::string> Progress::StepKeys() {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

void Progress::Cached(const StepLabel& s, const std::string& key) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys_.push_back(key);
  }
  if (mode_ == ProgressMode::kPlain)
    Emit(Prefix(s) + "CACHED");
  else if (mode_ == ProgressMode::kJson)
    Json(s, "cached", key, 0, "", "");
}

void Progress::Done(const StepLabel& s, const std::string& key, double seconds) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys_.push_back(key);
  }
  if (mode_ == ProgressMode::kPlain) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fs", seconds);
    Emit(Prefix(s) + "DONE " + buf);
  } else if (mode_ == ProgressMode::kJson) {
    Json(s, "done", key, seconds, "", "");
  }
}

void Progress::Failed(const StepLabel& s, const std::string& message) {
  if (mode_ == ProgressMode::kPlain)
    Emit(Prefix(s) + "ERROR: " + message);
  else if (mode_ == ProgressMode::kJson)
    Json(s, "error", "", -1, "error", message);
}

void Progress::Output(const StepLabel& s, const std::string& line) {
  if (mode_ == ProgressMode::kPlain)
    Emit(Prefix(s) + "| " + line);
  else if (mode_ == ProgressMode::kJson)
    Json(s, "output", "", -1, "output", line);
}

void Progress::Explain(const StepLabel& s, bool hit, const std::vector<std::string>& reasons) {
  if (mode_ == ProgressMode::kJson) {
    nlohmann::json j;
    j["stage"] = s.stage;
    j["step"] = s.step;
    j["total"] = s.total;
    j["instruction"] = s.text;
    j["status"] = "explain";
    j["cache"] = hit ? "hit" : "miss";
    j["reasons"] = reasons;
    Emit(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  // Plain lines on stderr, also with -q: the user asked for them.
  if (hit) {
    Emit(Prefix(s) + "cache hit: " + s.text);
    return;
  }
  std::string text = Prefix(s) + "cache miss: " + s.text;
  for (const auto& r : reasons)
    text += "\n" + Prefix(s) + "  because " + r;
  Emit(text);
}

void Progress::Message(const std::string& text) {
  if (mode_ == ProgressMode::kPlain) {
    Emit(text);
  } else if (mode_ == ProgressMode::kJson) {
    nlohmann::json j;
    j["status"] = "message";
    j["message"] = text;
    Emit(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
}

}  // namespace kiln::engine
