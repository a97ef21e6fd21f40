// The live terminal view of a build (`--progress=tty`, and `auto` on a
// terminal), drawn like BuildKit's:
//
//   [+] Building 2.4s (5/9)
//    => [base 1/3] FROM busybox                                    0.0s
//    => CACHED [base 2/3] RUN make deps                            0.0s
//    => [app 3/4] RUN make                                         1.2s
//    => => # cc -c main.c
//
// one row per started step with its elapsed time, the steps of parallel
// stages at once, the last lines of a running step's output under it
// (collapsed when it is done). TtyModel holds the rows and renders a frame
// (pure: unit-tested); TtyView feeds it the events under a mutex and redraws
// from one thread at most 10 times a second with ANSI cursor movement, one
// write(2) per frame. Log lines (kiln: warning: ...) go above the frame
// while it is live. At the end: the whole frame once more ("FINISHED" or
// "ERROR"), then every failed step's whole output.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::engine {

class TtyModel {
 public:
  enum class State { kRunning, kDone, kCached, kError };
  struct Row {
    std::string stage;  // the rows of one stage run one after another
    std::string label;  // "[base 2/3] RUN make"
    State state = State::kRunning;
    bool counts = true;     // a step: counts in "(done/total)"
    bool sub = false;       // a "=> =>" line under the row before (naming to ...)
    double start = 0, end = 0;
    std::deque<std::string> tail;  // the last kTailLines lines, made printable
    std::string log;               // the whole output (the last 1 MiB), for a failure
  };
  static constexpr size_t kTailLines = 6;

  /// Times are seconds since the build started.
  void Begin(int steps) { total_ += steps; }
  void Start(const std::string& stage, const std::string& label, double now, bool counts = true);
  /// Ends the stage's running row: kDone, kCached (a row of its own when
  /// the step had not started) or kError.
  void End(const std::string& stage, const std::string& label, State state, double now);
  void Output(const std::string& stage, const std::string& line);
  /// A finished "=> => text" line under the last row.
  void Sub(const std::string& text, double now);
  /// Ends every row of `stage` still running (the stage is done).
  void EndStage(const std::string& stage, double now);
  void Finish(bool ok, double now);

  /// The frame at `now`: the header and the rows, each at most `width`
  /// columns. A live frame (not finished) keeps to `height` lines, dropping
  /// the oldest finished rows first.
  std::vector<std::string> Render(double now, int width, int height) const;
  /// After the last frame: each failed step's whole output between "------"
  /// lines, as BuildKit prints it.
  std::string FailureReport() const;
  bool running() const;
  bool finished() const { return finished_; }

  /// `line` made printable: the text after the last carriage return,
  /// escape sequences and other control characters dropped, tabs as spaces.
  static std::string Printable(const std::string& line);
  /// `text` cut to `width` columns (UTF-8 sequences kept whole).
  static std::string Fit(const std::string& text, int width);

 private:
  Row* RunningRow(const std::string& stage);

  std::vector<Row> rows_;
  int total_ = 0;
  bool finished_ = false;
  bool ok_ = false;
  double end_ = 0;
};

class TtyView {
 public:
  /// Draws on `fd` until Finish() (or destruction); routes kiln's log lines
  /// above the frame meanwhile.
  explicit TtyView(int fd);
  ~TtyView();
  TtyView(const TtyView&) = delete;
  TtyView& operator=(const TtyView&) = delete;

  void Begin(int steps);
  void Start(const std::string& stage, const std::string& label, bool counts = true);
  void End(const std::string& stage, const std::string& label, TtyModel::State state);
  void Output(const std::string& stage, const std::string& line);
  void Sub(const std::string& text);
  void EndStage(const std::string& stage);
  /// A line printed above the frame (and kept in the scrollback).
  void Message(const std::string& text);
  void Succeeded();
  void Finish();

 private:
  double Now() const;
  void Loop();
  /// Redraws: the pending messages above, then the frame. Holds mu_.
  void DrawLocked(bool final);

  struct Shared;  // what the log sink reaches (it may outlive the view)
  int fd_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  TtyModel model_;                    // guarded by mu_
  std::vector<std::string> messages_;  // guarded by mu_: to print above the frame
  int drawn_ = 0;                      // lines of the frame on the screen
  bool dirty_ = true;
  bool ok_ = false;
  bool stop_ = false;
  bool done_ = false;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace kiln::engine
