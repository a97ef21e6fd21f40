// Build progress output: `plain` (one line per event, "[stage 2/4] RUN make"),
// `json` (one object per line for CI tools) or `quiet`. Thread-safe: every
// line is written with one write(2), so parallel stages never interleave
// mid-line, and step output is never truncated.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::engine {

enum class ProgressMode { kPlain, kJson, kQuiet };

/// Identifies one step in progress events.
struct StepLabel {
  std::string stage;  // stage name, or "stage-N"
  int step = 0;       // 1-based within the stage (0 = the FROM line)
  int total = 0;      // steps in the stage
  std::string text;   // "RUN make"
};

class Progress {
 public:
  explicit Progress(ProgressMode mode, int fd = 2) : mode_(mode), fd_(fd) {}

  void Start(const StepLabel& s);
  void Cached(const StepLabel& s, const std::string& key);
  void Done(const StepLabel& s, const std::string& key, double seconds);
  void Failed(const StepLabel& s, const std::string& message);
  /// One line of a RUN step's output (without the newline).
  void Output(const StepLabel& s, const std::string& line);
  /// --explain-cache: whether the step hit the cache and, on a miss, why
  /// (one reason per line). Plain text on stderr ("[stage 2/5] cache miss:
  /// file a.txt changed: content"), or a json event with status "explain",
  /// "cache": "hit"|"miss" and "reasons".
  void Explain(const StepLabel& s, bool hit, const std::vector<std::string>& reasons);
  /// A free-form message ("writing image sha256:...").
  void Message(const std::string& text);
  ProgressMode mode() const { return mode_; }
  /// The cache key ("sha256:...") of every step reported Cached() or Done()
  /// so far, in report order: what `--cache-to` exports.
  std::vector<std::string> StepKeys();

 private:
  void Emit(const std::string& line);
  void Json(const StepLabel& s, const char* status, const std::string& key, double seconds,
            const std::string& extra_name, const std::string& extra);
  std::string Prefix(const StepLabel& s) const;

  ProgressMode mode_;
  int fd_;
  std::mutex mu_;
  std::vector<std::string> keys_;  // guarded by mu_
};

}  // namespace kiln::engine
