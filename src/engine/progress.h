// Build progress output (docs/build.md "Build output"). The engine reports
// events (a step started, came from the cache, finished, failed, printed a
// line; the image was committed and named) and the mode renders them:
//   plain  podman/buildah's lines: "[1/2] STEP 2/3: RUN make", the step's
//          output as it comes, "--> Using cache <key>", "--> <short key>",
//          "COMMIT name", "Successfully tagged name"; one write(2) per event,
//          so parallel stages never interleave mid-line (the output and
//          "-->" lines of a stage that runs beside another get a "[stage] "
//          prefix)
//   json   one object per event and line (the schema is in docs/build.md)
//   tty    the live view (progress_tty.h), redrawn on a timer
//   quiet  nothing
// Thread-safe: parallel stages report into one Progress.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::engine {

enum class ProgressMode { kPlain, kJson, kQuiet, kTty };

/// Identifies one step in progress events.
struct StepLabel {
  std::string stage;   // stage name, or "stage-N"
  int step = 0;        // 1-based within the stage (0 = the FROM line)
  int total = 0;       // steps in the stage after FROM
  std::string text;    // "RUN make"
  int stage_index = 0; // 1-based position of the stage in the build
  int stages = 1;      // stages in the build
  bool last = false;   // the build's last step (its layer is the image: no "--> id" line, as buildah)
};

class TtyView;

class Progress {
 public:
  /// Writes to `fd` (kTty: a live view of its own on `fd`).
  explicit Progress(ProgressMode mode, int fd = 2);
  /// Reports into a live view shared with other builds (one per platform),
  /// its rows named "[scope stage n/N]".
  Progress(std::shared_ptr<TtyView> view, std::string scope);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// The build has `steps` steps (FROM lines included) in all: the live
  /// view's "(done/total)".
  void Begin(int steps);
  void Start(const StepLabel& s);
  void Cached(const StepLabel& s, const std::string& key);
  void Done(const StepLabel& s, const std::string& key, double seconds);
  /// A step that only changes the image config (ENV, LABEL, CMD, ARG...):
  /// applied at once, no layer. `key` is the cache key after it.
  void Config(const StepLabel& s, const std::string& key);
  void Failed(const StepLabel& s, const std::string& message);
  /// One line of a RUN step's output (without the newline).
  void Output(const StepLabel& s, const std::string& line);
  /// The stage's last step is done.
  void StageDone(const StepLabel& s);
  /// --explain-cache: whether the step hit the cache and, on a miss, why
  /// (one reason per line). Plain text on stderr ("[stage-1 5/9] cache miss:
  /// file a.txt changed: content"), or a json event with status "explain",
  /// "cache": "hit"|"miss" and "reasons".
  void Explain(const StepLabel& s, bool hit, const std::vector<std::string>& reasons);
  /// The final image is being written ("COMMIT name"); `s` names the target
  /// stage, `name` the first tag as the user wrote it (may be empty).
  void Commit(const StepLabel& s, const std::string& name);
  /// ... and was written: `id` is "sha256:<hex>".
  void Committed(const std::string& id, double seconds);
  /// The image was named `name` ("Successfully tagged name").
  void Tagged(const std::string& name);
  /// A free-form message ("imported 3 cache records").
  void Message(const std::string& text);
  /// The build succeeded: the live view's last frame says FINISHED.
  void Succeeded();
  /// Ends the live view (the last frame, a failed step's whole output);
  /// the destructor does it too. Nothing is written after it.
  void Finish();
  ProgressMode mode() const { return mode_; }
  /// The cache key ("sha256:...") of every step reported Cached() or Done()
  /// so far, in report order: what `--cache-to` exports.
  std::vector<std::string> StepKeys();

 private:
  void Emit(const std::string& line);
  void Json(const StepLabel& s, const char* status, const std::string& key, double seconds,
            const std::string& extra_name, const std::string& extra);
  void JsonOther(const char* status, const std::string& name, const std::string& value);
  std::string ExplainPrefix(const StepLabel& s) const;
  /// "[2/3] " before STEP and COMMIT lines of a multi-stage build.
  static std::string StagePrefix(const StepLabel& s);
  /// "[name] " before output and "-->" lines while stages run in parallel.
  std::string ParallelPrefix(const StepLabel& s);
  std::string TtyStage(const StepLabel& s) const;
  double Elapsed() const;

  ProgressMode mode_;
  int fd_;
  std::shared_ptr<TtyView> view_;  // kTty
  bool own_view_ = false;          // Finish() ends the view
  bool log_sink_ = false;          // kJson on stderr: log lines become "message" events
  std::string scope_;              // kTty: "linux/arm64" in a multi-platform build
  std::string commit_label_;       // kTty: the COMMIT row
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::mutex mu_;
  std::vector<std::string> keys_;  // guarded by mu_
  std::vector<std::string> active_stages_;    // guarded by mu_: started, not done
  std::vector<std::string> parallel_stages_;  // guarded by mu_: active ones that ran beside another
};

/// The mode `--progress` names ("auto": tty when `fd` is a terminal and
/// $TERM is not "dumb", else plain). Empty `name` reads $BUILDKIT_PROGRESS
/// first, as docker does. False for an unknown name.
bool ParseProgressMode(const std::string& name, int fd, ProgressMode* out);

}  // namespace kiln::engine
