#include "engine/progress_tty.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

#include "kiln/fs.h"
#include "kiln/log.h"

namespace kiln::engine {

namespace {

constexpr size_t kMaxLog = size_t(1) << 20;  // a failed step's output kept for the report

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s < 0 ? 0.0 : s);
  return buf;
}

/// Columns `text` takes (UTF-8 continuation bytes take none).
int Columns(const std::string& text) {
  int n = 0;
  for (unsigned char c : text)
    n += (c & 0xC0) != 0x80;
  return n;
}

/// " => LABEL<spaces>TIME" in `width` columns (the time at the right edge).
std::string RowLine(const std::string& prefix, const std::string& label, const std::string& time, int width) {
  std::string left = TtyModel::Fit(prefix + label, width - static_cast<int>(time.size()) - 1);
  int pad = width - Columns(left) - static_cast<int>(time.size());
  return left + std::string(static_cast<size_t>(pad < 1 ? 1 : pad), ' ') + time;
}

}  // namespace

// ------------------------------------------------------------- the model

std::string TtyModel::Printable(const std::string& line) {
  std::string s = line;
  while (!s.empty() && s.back() == '\r')
    s.pop_back();
  if (size_t cr = s.rfind('\r'); cr != std::string::npos)
    s.erase(0, cr + 1);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0x1b) {  // ESC [ ... final byte, ESC ] ... BEL/ST, or ESC x
      if (i + 1 < s.size() && s[i + 1] == '[') {
        i += 2;
        while (i < s.size() && !(s[i] >= 0x40 && s[i] <= 0x7e))
          ++i;
      } else if (i + 1 < s.size() && s[i + 1] == ']') {
        i += 2;
        while (i < s.size() && s[i] != '\a' && !(s[i] == 0x1b && i + 1 < s.size() && s[i + 1] == '\\'))
          ++i;
        if (i < s.size() && s[i] == 0x1b)
          ++i;
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\t')
      out += "    ";
    else if (c >= 0x20 && c != 0x7f)
      out.push_back(static_cast<char>(c));
  }
  return out;
}

std::string TtyModel::Fit(const std::string& text, int width) {
  if (width <= 0)
    return "";
  int cols = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80)
      continue;
    if (++cols > width)
      return text.substr(0, i);
  }
  return text;
}

TtyModel::Row* TtyModel::RunningRow(const std::string& stage) {
  for (auto it = rows_.rbegin(); it != rows_.rend(); ++it)
    if (it->stage == stage && it->state == State::kRunning && !it->sub)
      return &*it;
  return nullptr;
}

void TtyModel::Start(const std::string& stage, const std::string& label, double now, bool counts) {
  EndStage(stage, now);  // a stage runs its steps one after another
  Row r;
  r.stage = stage;
  r.label = label;
  r.counts = counts;
  r.start = r.end = now;
  rows_.push_back(std::move(r));
}

void TtyModel::End(const std::string& stage, const std::string& label, State state, double now) {
  Row* r = RunningRow(stage);
  if (r == nullptr || r->label != label) {
    Start(stage, label, now);
    r = &rows_.back();
  }
  r->state = state;
  r->end = now;
  if (state != State::kError) {
    r->tail.clear();
    r->log.clear();
    r->log.shrink_to_fit();
  }
}

void TtyModel::Output(const std::string& stage, const std::string& line) {
  Row* r = RunningRow(stage);
  if (r == nullptr)
    return;
  r->log.append(line).push_back('\n');
  if (r->log.size() > kMaxLog)
    r->log.erase(0, r->log.size() - kMaxLog / 2);
  r->tail.push_back(Printable(line));
  if (r->tail.size() > kTailLines)
    r->tail.pop_front();
}

void TtyModel::Sub(const std::string& text, double now) {
  Row r;
  r.label = text;
  r.sub = true;
  r.counts = false;
  r.state = State::kDone;
  r.start = r.end = now;
  rows_.push_back(std::move(r));
}

void TtyModel::EndStage(const std::string& stage, double now) {
  for (Row& r : rows_)
    if (r.stage == stage && r.state == State::kRunning && !r.sub) {
      r.state = State::kDone;
      r.end = now;
      r.tail.clear();
    }
}

void TtyModel::Finish(bool ok, double now) {
  for (Row& r : rows_)
    if (r.state == State::kRunning) {
      // A step that was still running when the build ended (another
      // stage failed, or the build was cancelled) did not finish.
      r.state = ok ? State::kDone : State::kError;
      r.end = now;
      if (ok)
        r.tail.clear();
    }
  finished_ = true;
  ok_ = ok;
  end_ = now;
}

bool TtyModel::running() const {
  for (const Row& r : rows_)
    if (r.state == State::kRunning)
      return true;
  return false;
}

std::vector<std::string> TtyModel::Render(double now, int width, int height) const {
  if (width < 20)
    width = 20;
  double t = finished_ ? end_ : now;
  int done = 0, steps = 0;
  for (const Row& r : rows_) {
    steps += r.counts;
    done += r.counts && (r.state == State::kDone || r.state == State::kCached);
  }
  int total = total_ > steps ? total_ : steps;
  std::string header = "[+] Building " + Seconds(t) + " (" + std::to_string(done) + "/" + std::to_string(total) + ")";
  if (finished_)
    header += ok_ ? " FINISHED" : " ERROR";

  // Each row's lines; `keep` marks the lines of rows still running.
  struct Line {
    std::string text;
    size_t row;
  };
  std::vector<Line> lines;
  for (size_t i = 0; i < rows_.size(); ++i) {
    const Row& r = rows_[i];
    if (r.sub) {
      lines.push_back({Fit(" => => " + r.label, width), i});
      continue;
    }
    std::string prefix = " => ";
    if (r.state == State::kCached)
      prefix += "CACHED ";
    else if (r.state == State::kError)
      prefix += "ERROR ";
    double secs = (r.state == State::kRunning ? t : r.end) - r.start;
    lines.push_back({RowLine(prefix, r.label, Seconds(secs), width), i});
    if (r.state == State::kRunning || (r.state == State::kError && !finished_))
      for (const std::string& l : r.tail)
        lines.push_back({Fit(" => => # " + l, width), i});
  }
  if (!finished_ && height > 2 && lines.size() + 1 > static_cast<size_t>(height - 1)) {
    // Too tall for the terminal: drop the oldest finished rows, then the
    // oldest lines of all.
    size_t room = static_cast<size_t>(height - 2);
    std::vector<bool> drop(rows_.size(), false);
    size_t n = lines.size();
    for (size_t i = 0; i < rows_.size() && n > room; ++i)
      if (rows_[i].state != State::kRunning) {
        drop[i] = true;
        for (const Line& l : lines)
          n -= l.row == i;
      }
    std::vector<Line> kept;
    for (Line& l : lines)
      if (!drop[l.row])
        kept.push_back(std::move(l));
    if (kept.size() > room)
      kept.erase(kept.begin(), kept.end() - static_cast<std::ptrdiff_t>(room));
    lines = std::move(kept);
  }
  std::vector<std::string> out;
  out.push_back(Fit(header, width));
  for (Line& l : lines)
    out.push_back(std::move(l.text));
  return out;
}

std::string TtyModel::FailureReport() const {
  std::string out;
  for (const Row& r : rows_) {
    if (r.state != State::kError || r.sub || r.log.empty())
      continue;
    out += "------\n > " + r.label + ":\n" + r.log + "------\n";
  }
  return out;
}

// -------------------------------------------------------------- the view

struct TtyView::Shared {
  std::mutex mu;
  TtyView* view = nullptr;  // null once the view has finished
};

TtyView::TtyView(int fd) : fd_(fd), start_(std::chrono::steady_clock::now()), shared_(std::make_shared<Shared>()) {
  shared_->view = this;
  std::shared_ptr<Shared> shared = shared_;
  int out = fd;
  SetLogSink([shared, out](std::string_view line) {
    std::lock_guard<std::mutex> lock(shared->mu);
    if (shared->view != nullptr)
      shared->view->Message(std::string(line));
    else
      (void)WriteAll(out, std::string(line) + "\n");
  });
  thread_ = std::thread([this] { Loop(); });
}

TtyView::~TtyView() { Finish(); }

double TtyView::Now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void TtyView::Begin(int steps) {
  std::lock_guard<std::mutex> lock(mu_);
  model_.Begin(steps);
  dirty_ = true;
}

void TtyView::Start(const std::string& stage, const std::string& label, bool counts) {
  std::lock_guard<std::mutex> lock(mu_);
  model_.Start(stage, label, Now(), counts);
  dirty_ = true;
}

void TtyView::End(const std::string& stage, const std::string& label, TtyModel::State state) {
  std::lock_guard<std::mutex> lock(mu_);
  model_.End(stage, label, state, Now());
  dirty_ = true;
}

void TtyView::Output(const std::string& stage, const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  model_.Output(stage, line);
  dirty_ = true;
}

void TtyView::Sub(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  model_.Sub(text, Now());
  dirty_ = true;
}

void TtyView::EndStage(const std::string& stage) {
  std::lock_guard<std::mutex> lock(mu_);
  model_.EndStage(stage, Now());
  dirty_ = true;
}

void TtyView::Message(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) {
    (void)WriteAll(fd_, text + "\n");
    return;
  }
  messages_.push_back(text);
  dirty_ = true;
  cv_.notify_one();  // messages show at once
}

void TtyView::Succeeded() {
  std::lock_guard<std::mutex> lock(mu_);
  ok_ = true;
}

void TtyView::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Running steps' times change every tenth of a second.
    if (dirty_ || model_.running())
      DrawLocked(false);
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

void TtyView::DrawLocked(bool final) {
  int width = 80, height = 24;
  struct winsize ws {};
  if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    width = ws.ws_col;
    height = ws.ws_row;
  }
  std::string out;
  if (drawn_ > 0)
    out += "\x1b[" + std::to_string(drawn_) + "F";  // to the first column of the frame's first line
  for (const std::string& m : messages_)
    out += m + "\x1b[K\n";
  messages_.clear();
  // One column short of the edge: a full line would wrap on some terminals.
  std::vector<std::string> frame = model_.Render(Now(), width - 1, final ? 0 : height);
  for (const std::string& l : frame)
    out += l + "\x1b[K\n";
  out += "\x1b[J";  // what is left of a longer frame
  if (final)
    out += model_.FailureReport();
  drawn_ = static_cast<int>(frame.size());
  dirty_ = false;
  (void)WriteAll(fd_, out);
}

void TtyView::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_)
      return;
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable())
    thread_.join();
  SetLogSink(nullptr);
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->view = nullptr;
  }
  std::lock_guard<std::mutex> lock(mu_);
  model_.Finish(ok_, Now());
  DrawLocked(true);
  done_ = true;
}

}  // namespace kiln::engine
