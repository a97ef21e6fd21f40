#include "engine/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "engine/progress_tty.h"
#include "kiln/fs.h"
#include "kiln/log.h"

namespace kiln::engine {

namespace {

std::string Hex(const std::string& digest) {
  size_t colon = digest.find(':');
  return colon == std::string::npos ? digest : digest.substr(colon + 1);
}

/// buildah's short ID: the first 11 hex digits.
std::string ShortId(const std::string& digest) { return Hex(digest).substr(0, 11); }

/// "STEP 2/4: RUN make" (FROM is step 1, as podman and BuildKit count).
std::string StepText(const StepLabel& s) {
  return "STEP " + std::to_string(s.step + 1) + "/" + std::to_string(s.total + 1) + ": " + s.text;
}

std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

Progress::Progress(ProgressMode mode, int fd) : mode_(mode), fd_(fd) {
  if (mode_ == ProgressMode::kTty) {
    view_ = std::make_shared<TtyView>(fd);
    own_view_ = true;
  } else if (mode_ == ProgressMode::kJson && fd == STDERR_FILENO) {
    // kiln's own warnings become "message" events: every line a JSON object.
    auto start = start_;
    SetLogSink([fd, start](std::string_view line) {
      nlohmann::json j;
      j["status"] = "message";
      j["message"] = std::string(line);
      j["elapsed"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      (void)WriteAll(fd, Dump(j) + "\n");
    });
    log_sink_ = true;
  }
}

Progress::Progress(std::shared_ptr<TtyView> view, std::string scope)
    : mode_(ProgressMode::kTty), fd_(STDERR_FILENO), view_(std::move(view)), scope_(std::move(scope)) {}

Progress::~Progress() {
  Finish();
  if (log_sink_)
    SetLogSink(nullptr);
}

void Progress::Finish() {
  if (view_ && own_view_)
    view_->Finish();
}

double Progress::Elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::ExplainPrefix(const StepLabel& s) const {
  return "[" + s.stage + " " + std::to_string(s.step) + "/" + std::to_string(s.total) + "] ";
}

std::string Progress::StagePrefix(const StepLabel& s) {
  if (s.stages <= 1)
    return "";
  return "[" + std::to_string(s.stage_index) + "/" + std::to_string(s.stages) + "] ";
}

std::string Progress::ParallelPrefix(const StepLabel& s) {
  std::lock_guard<std::mutex> lock(mu_);
  // A stage that ran beside another keeps its prefix to its end.
  if (active_stages_.size() > 1)
    for (const std::string& st : active_stages_)
      if (std::find(parallel_stages_.begin(), parallel_stages_.end(), st) == parallel_stages_.end())
        parallel_stages_.push_back(st);
  bool prefixed = std::find(parallel_stages_.begin(), parallel_stages_.end(), s.stage) != parallel_stages_.end();
  return prefixed ? "[" + s.stage + "] " : "";
}

/// The live view's name for the stage ("linux/arm64 base" in a
/// multi-platform build) and the row's label ("[base 2/4] RUN make").
std::string Progress::TtyStage(const StepLabel& s) const { return scope_.empty() ? s.stage : scope_ + " " + s.stage; }

static std::string TtyLabel(const std::string& stage, const StepLabel& s) {
  return "[" + stage + " " + std::to_string(s.step + 1) + "/" + std::to_string(s.total + 1) + "] " + s.text;
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
  j["elapsed"] = Elapsed();
  Emit(Dump(j));
}

void Progress::JsonOther(const char* status, const std::string& name, const std::string& value) {
  nlohmann::json j;
  j["status"] = status;
  if (!name.empty())
    j[name] = value;
  j["elapsed"] = Elapsed();
  Emit(Dump(j));
}

void Progress::Begin(int steps) {
  if (view_)
    view_->Begin(steps);
}

void Progress::Start(const StepLabel& s) {
  if (s.step == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    active_stages_.push_back(s.stage);
  }
  if (mode_ == ProgressMode::kPlain)
    Emit(StagePrefix(s) + StepText(s));
  else if (mode_ == ProgressMode::kJson)
    Json(s, "start", "", -1, "", "");
  else if (view_)
    view_->Start(TtyStage(s), TtyLabel(TtyStage(s), s));
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
  if (mode_ == ProgressMode::kPlain) {
    std::string p = ParallelPrefix(s);
    Emit(StagePrefix(s) + StepText(s) + "\n" + p + "--> Using cache " + Hex(key) +
         (s.last ? "" : "\n" + p + "--> " + ShortId(key)));
  } else if (mode_ == ProgressMode::kJson) {
    Json(s, "cached", key, 0, "", "");
  } else if (view_) {
    view_->End(TtyStage(s), TtyLabel(TtyStage(s), s), TtyModel::State::kCached);
  }
}

void Progress::Done(const StepLabel& s, const std::string& key, double seconds) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys_.push_back(key);
  }
  if (mode_ == ProgressMode::kPlain) {
    if (!s.last)
      Emit(ParallelPrefix(s) + "--> " + ShortId(key));
  }
  else if (mode_ == ProgressMode::kJson)
    Json(s, "done", key, seconds, "", "");
  else if (view_)
    view_->End(TtyStage(s), TtyLabel(TtyStage(s), s), TtyModel::State::kDone);
}

void Progress::Config(const StepLabel& s, const std::string& key) {
  if (mode_ == ProgressMode::kPlain)
    Emit(StagePrefix(s) + StepText(s) +
         (Hex(key).empty() || s.last ? "" : "\n" + ParallelPrefix(s) + "--> " + ShortId(key)));
  else if (mode_ == ProgressMode::kJson)
    Json(s, "config", key, -1, "", "");
  else if (view_)
    view_->End(TtyStage(s), TtyLabel(TtyStage(s), s), TtyModel::State::kDone);
}

void Progress::Failed(const StepLabel& s, const std::string& message) {
  // Plain: the error itself is the command's last line (kiln: error: ...).
  if (mode_ == ProgressMode::kJson)
    Json(s, "error", "", -1, "error", message);
  else if (view_)
    view_->End(TtyStage(s), TtyLabel(TtyStage(s), s), TtyModel::State::kError);
}

void Progress::Output(const StepLabel& s, const std::string& line) {
  if (mode_ == ProgressMode::kPlain)
    Emit(ParallelPrefix(s) + line);
  else if (mode_ == ProgressMode::kJson)
    Json(s, "output", "", -1, "output", line);
  else if (view_)
    view_->Output(TtyStage(s), line);
}

void Progress::StageDone(const StepLabel& s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find(active_stages_.begin(), active_stages_.end(), s.stage);
    if (it != active_stages_.end())
      active_stages_.erase(it);
    std::erase(parallel_stages_, s.stage);
  }
  if (view_)
    view_->EndStage(TtyStage(s));
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
    j["elapsed"] = Elapsed();
    Emit(Dump(j));
    return;
  }
  // Plain lines on stderr, also with -q: the user asked for them.
  std::string text = ExplainPrefix(s) + (hit ? "cache hit: " : "cache miss: ") + s.text;
  if (!hit)
    for (const auto& r : reasons)
      text += "\n" + ExplainPrefix(s) + "  because " + r;
  if (view_)
    view_->Message(text);
  else
    Emit(text);
}

void Progress::Commit(const StepLabel& s, const std::string& name) {
  std::string text = name.empty() ? "COMMIT" : "COMMIT " + name;
  if (mode_ == ProgressMode::kPlain) {
    Emit(StagePrefix(s) + text);
  } else if (mode_ == ProgressMode::kJson) {
    JsonOther("commit", "name", name);
  } else if (view_) {
    commit_label_ = scope_.empty() ? text : "[" + scope_ + "] " + text;
    view_->Start("commit " + scope_, commit_label_, false);
  }
}

void Progress::Committed(const std::string& id, double seconds) {
  if (mode_ == ProgressMode::kPlain) {
    Emit("--> " + ShortId(id));
  } else if (mode_ == ProgressMode::kJson) {
    nlohmann::json j;
    j["status"] = "committed";
    j["id"] = id;
    j["duration"] = seconds;
    j["elapsed"] = Elapsed();
    Emit(Dump(j));
  } else if (view_) {
    view_->End("commit " + scope_, commit_label_, TtyModel::State::kDone);
    view_->Sub("writing image " + id);
  }
}

void Progress::Tagged(const std::string& name) {
  if (mode_ == ProgressMode::kPlain)
    Emit("Successfully tagged " + name);
  else if (mode_ == ProgressMode::kJson)
    JsonOther("tagged", "name", name);
  else if (view_)
    view_->Sub("naming to " + name);
}

void Progress::Message(const std::string& text) {
  if (mode_ == ProgressMode::kPlain)
    Emit(text);
  else if (mode_ == ProgressMode::kJson)
    JsonOther("message", "message", text);
  else if (view_)
    view_->Message(text);
}

void Progress::Succeeded() {
  if (view_)
    view_->Succeeded();
}

bool ParseProgressMode(const std::string& name, int fd, ProgressMode* out) {
  std::string n = name;
  if (n.empty()) {
    const char* env = std::getenv("BUILDKIT_PROGRESS");
    n = env != nullptr && *env != '\0' ? env : "auto";
  }
  if (n == "auto") {
    const char* term = std::getenv("TERM");
    bool dumb = term != nullptr && std::string(term) == "dumb";
    *out = ::isatty(fd) == 1 && !dumb ? ProgressMode::kTty : ProgressMode::kPlain;
  } else if (n == "tty") {
    *out = ProgressMode::kTty;
  } else if (n == "plain") {
    *out = ProgressMode::kPlain;
  } else if (n == "json") {
    *out = ProgressMode::kJson;
  } else if (n == "quiet") {
    *out = ProgressMode::kQuiet;
  } else {
    return false;
  }
  return true;
}

}  // namespace kiln::engine
